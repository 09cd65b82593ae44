"""Character-level sequence classification with stratified evaluation for imbalanced classes.

The pieces, one per module:

- :mod:`~charrnn.classification.data`: labelled texts from a folder of ``<label>.txt`` files
  or a CSV/TSV table;
- :mod:`~charrnn.classification.model`: embedding → cell stack (one or both directions) over
  each text's length → pooling over the valid positions → class logits;
- :mod:`~charrnn.classification.train`: the training loop (class and sample weights, balanced
  sampler, logit adjustment, epoch and τ chosen on a validation split of the training texts);
- :mod:`~charrnn.classification.predict`: a trained classifier's probabilities and top-k labels,
  and files of texts labelled into CSV a chunk at a time;
- :mod:`~charrnn.classification.checkpoint`: save and load, no pickle;
- :mod:`~charrnn.classification.splits`: stratified splitters that keep duplicates together;
- :mod:`~charrnn.classification.metrics`: per-class and macro scores, confusion matrices;
- :mod:`~charrnn.classification.evaluate` and :mod:`~charrnn.classification.experiment`:
  cross-validation or hold-out, then a saved final model;
- :mod:`~charrnn.classification.estimator`: the same model as a scikit-learn estimator.
"""

import importlib

#: Each public name and the module that holds it. They are imported on first use, so that a
#: command which needs one module does not wait for scikit-learn (a second to import).
_EXPORTS = {
    "load_classifier": "checkpoint", "save_classifier": "checkpoint",
    "LabeledTexts": "data", "load_dataset": "data", "load_folder": "data", "load_table": "data",
    "CharRNNClassifier": "estimator",
    "EvaluationReport": "evaluate", "evaluate_splits": "evaluate",
    "train_and_evaluate": "experiment",
    "CharClassifier": "model", "ClassifierConfig": "model",
    "TextClassifier": "predict", "label_file": "predict", "write_predictions_csv": "predict",
    "DuplicateReport": "splits", "SplitError": "splits", "StratifiedDuplicateKFold": "splits",
    "StratifiedDuplicateShuffleSplit": "splits", "find_duplicates": "splits",
    "TrainingOptions": "train", "train_classifier": "train",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Import a public name's module the first time the name is asked for (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, those not imported yet included."""
    return sorted(set(globals()) | set(_EXPORTS))
