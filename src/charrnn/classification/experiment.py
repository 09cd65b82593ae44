"""One classification run from labelled texts to a saved model and its evaluation.

This is what ``charrnn classify train`` calls: evaluate by stratified K-fold or a stratified
hold-out (duplicates grouped), then keep a final model and write everything to one folder.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from charrnn.classification.checkpoint import save_classifier
from charrnn.classification.data import LabeledTexts
from charrnn.classification.evaluate import EvaluationReport, evaluate_splits
from charrnn.classification.metrics import format_confusion, save_confusion_png
from charrnn.classification.splits import (
    StratifiedDuplicateKFold,
    StratifiedDuplicateShuffleSplit,
)
from charrnn.classification.train import TrainingOptions, train_classifier
from charrnn.devices import select_device
from charrnn.errors import CharRNNError
from charrnn.files import atomic_write, make_folder, write_json
from charrnn.training.run_directory import (
    CONFUSION_PLOT,
    CONFUSION_TEXT,
    EVALUATION_FILE,
    REPORT_FILE,
    clear_run,
    refuse_existing_run,
)


def train_and_evaluate(data: LabeledTexts, out: str | os.PathLike, *, cv: int | None = None,
                       test_size: float = 0.2, options: TrainingOptions | None = None,
                       log: Callable[[str], None] | None = None, overwrite: bool = False,
                       **model_settings) -> EvaluationReport:
    """Evaluate a classifier of ``data``, keep a final model, and save both into ``out``.

    With ``cv=K`` the scores come from stratified K-fold cross-validation and the saved model
    is then trained on all the data. Otherwise one stratified hold-out split of ``test_size``
    is scored and the saved model is the one trained on its train side. Exact duplicates stay
    on one side of every split either way.

    ``out`` receives the checkpoint (``config.json``, ``vocab.json``, ``labels.json``,
    ``model.safetensors``), ``evaluation.json``, ``report.txt``, ``confusion.txt`` and
    ``confusion.png``. ``model_settings`` are :func:`train_classifier`'s model arguments
    (``cell``, ``hidden_size``, ``num_layers``, ``embedding_size``, ``dropout``,
    ``bidirectional``, ``pooling``, ``ensemble``). With ``options.validation_fraction`` each
    training side (never a test side) gives up that share to choose its epoch and τ.

    A folder that already holds a run (of either kind) is refused unless ``overwrite``; a run
    that fails or is interrupted leaves the folder as it found it.
    """
    options = options or TrainingOptions()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CharRNNError(f"{out}: exists and is not a folder")
    refuse_existing_run(out, overwrite)
    select_device(options.device)  # refuse a missing device before any training
    created = not out.exists()
    make_folder(out, "the output folder")  # fail now, not after an hour of training
    try:
        return _train_and_evaluate(data, out, cv, test_size, options, log, overwrite, model_settings)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def _train_and_evaluate(data, out: Path, cv, test_size, options, log, overwrite, model_settings):

    last = None  # the hold-out keeps the model it scored

    def fit(part: LabeledTexts):
        nonlocal last
        last = train_classifier(part.texts, part.labels, data.classes, options=options, log=log,
                                **model_settings)
        return last

    if cv is not None:
        splitter = StratifiedDuplicateKFold(cv, shuffle=True, random_state=options.seed)
        method = f"stratified {cv}-fold cross-validation (copies of a text share a fold)"
    else:
        splitter = StratifiedDuplicateShuffleSplit(1, test_size=test_size, random_state=options.seed)
        method = f"stratified hold-out, test size {test_size:g} (copies of a text share a side)"
    report = evaluate_splits(data, splitter, fit, method, log)

    if cv is not None:
        if log is not None:
            log(f"final model: training on all {len(data)} texts")
        final, trained_on = fit(data), f"all {len(data)} texts (after cross-validation)"
    else:
        final = last
        trained_on = f"the hold-out's train side, {report.folds[0]['train_size']} texts"
    report.final_model_trained_on = trained_on
    if overwrite:
        clear_run(out, keep_lock=False)  # the folder is swapped in whole below; no lock is held on it
    save_classifier(final, out)
    write_json(out / EVALUATION_FILE, {**report.to_dict(), "model": final.model.config.to_dict(),
                                         "training": asdict(options)})
    atomic_write(out / REPORT_FILE, report.format() + "\n")
    atomic_write(out / CONFUSION_TEXT, format_confusion(report.summary["confusion"], data.classes) + "\n")
    save_confusion_png(report.summary["confusion"], data.classes, out / CONFUSION_PLOT,
                       title=f"Confusion matrix ({'%d-fold CV' % cv if cv else 'hold-out'})")
    return report
