"""A run directory's life: its layout, its lock, its saved settings, its corpus, and its cleanup.

A language-model run directory holds::

    config.json            {"format": "charrnn-run", "kind": "language-model", "model", "training", "corpus"}
    vocab.json             the characters, in id order
    data/                  the prepared corpus (corpus.bin, corpus.json, vocab.json)
    checkpoints/latest/    checkpoint folders (see charrnn.checkpoint)
    checkpoints/best/
    checkpoints/step-<step>-loss-<val>/   with --keep N: the last N evaluations' weights
    metrics.jsonl, loss.png
    samples.jsonl          with --sample-every: the samples taken while training
    .lock                  held by the process training in it
"""

from __future__ import annotations

import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from charrnn.checkpoint import (
    BEST,
    CHECKPOINTS_FOLDER,
    CLASSIFIER,
    CONFIG_FILE,
    LABELS_FILE,
    LANGUAGE_MODEL,
    LATEST,
    MODEL_FILE,
    NGRAM_FILES,
    RUN_FORMAT,
    VOCAB_FILE,
    check_kind,
    existing_checkpoint,
    run_kind,
)
from charrnn.corpus import PreparedCorpus, prepare_corpus
from charrnn.errors import CharRNNError, SettingError
from charrnn.files import CheckpointError, make_folder, read_json, write_json
from charrnn.training.reporting import METRICS_FILE, PLOT_FILE, SAMPLES_FILE
from charrnn.training.settings import TrainConfig
from charrnn.vocabulary import Vocabulary

DATA_FOLDER = "data"
LOCK_FILE = ".lock"
#: What a run adds to its folder (removed again when a new run fails before its first step).
RUN_ENTRIES = (DATA_FOLDER, CHECKPOINTS_FOLDER, CONFIG_FILE, VOCAB_FILE, METRICS_FILE, PLOT_FILE, SAMPLES_FILE,
               LOCK_FILE)
#: The name of an evaluation's kept checkpoint (``--keep``): its step and validation loss.
HISTORY_NAME = re.compile(r"step-(\d+)-loss-\d+\.\d+")


@contextmanager
def lock_run_directory(run_dir: str | os.PathLike):
    """Hold an exclusive lock on ``run_dir`` (created if needed) for the ``with`` block.

    A second process that asks for the same folder gets a :class:`CharRNNError` naming the
    process that holds it. The operating system drops the lock when its holder dies, even by
    ``kill -9``, so a crashed run never leaves the folder locked.
    """
    run_dir = Path(run_dir)
    make_folder(run_dir, "the run folder")
    try:
        handle = open(run_dir / LOCK_FILE, "a+", encoding="utf-8")
    except OSError as error:
        raise CharRNNError(f"{run_dir}: cannot write the run folder ({error.strerror})") from None
    try:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks, run unguarded
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                raise CharRNNError(f"{run_dir}: the run folder is in use by another charrnn process "
                                   f"(pid {holder}); wait for it to finish or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield run_dir
    finally:
        handle.close()  # closing releases the lock


#: A classifier run's reports (charrnn.classification.experiment writes them beside its checkpoint).
EVALUATION_FILE, REPORT_FILE, CONFUSION_TEXT, CONFUSION_PLOT = ("evaluation.json", "report.txt", "confusion.txt",
                                                                "confusion.png")
#: What a classifier run keeps in its folder: its checkpoint and its reports.
CLASSIFIER_ENTRIES = (MODEL_FILE, LABELS_FILE, *NGRAM_FILES, EVALUATION_FILE, REPORT_FILE, CONFUSION_TEXT,
                      CONFUSION_PLOT)
_KINDS = {LANGUAGE_MODEL: "a language model", CLASSIFIER: "a classifier"}


def refuse_existing_run(folder: Path, overwrite: bool, resume_hint: bool = False) -> None:
    """Refuse to start a new run in a folder that holds one (of either kind) unless ``overwrite``."""
    kind = run_kind(folder)
    if kind is not None and not overwrite:
        if resume_hint and kind == LANGUAGE_MODEL:
            raise SettingError(f"{folder}: already holds a run; pass --resume to continue it, --overwrite to "
                               f"replace it, or choose another --out")
        raise SettingError(f"{folder}: already holds a run ({_KINDS.get(kind, 'of an unknown kind')}); pass "
                           f"--overwrite to replace it or choose another --out")


def clear_run(folder: Path, keep_lock: bool = True) -> None:
    """Remove the files a run of either kind keeps in ``folder`` (nothing else: other files stay).

    ``keep_lock`` keeps the lock file, which the process clearing the folder holds.
    """
    for name in set(RUN_ENTRIES + CLASSIFIER_ENTRIES) - ({LOCK_FILE} if keep_lock else set()):
        target = folder / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


class RunDirectory:
    """The files of one language-model run (see the module's docs for the layout)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.config_file = self.path / CONFIG_FILE
        self.vocabulary_file = self.path / VOCAB_FILE
        self.data = self.path / DATA_FOLDER
        self.checkpoints = self.path / CHECKPOINTS_FOLDER

    def checkpoint(self, kind: str) -> Path:
        """Where the ``kind`` ('latest', 'best') checkpoint goes."""
        return self.checkpoints / kind

    def history_checkpoint(self, step: int, val_loss: float) -> Path:
        """Where the checkpoint kept for the evaluation at ``step`` goes (``--keep``)."""
        return self.checkpoints / f"step-{step:06d}-loss-{val_loss:.4f}"

    def history(self) -> list[Path]:
        """The kept evaluation checkpoints, oldest first."""
        if not self.checkpoints.is_dir():
            return []
        found = [(int(match.group(1)), path) for path in self.checkpoints.iterdir()
                 if path.is_dir() and (match := HISTORY_NAME.fullmatch(path.name))]
        return [path for _, path in sorted(found)]

    def prune_history(self, keep: int) -> None:
        """Remove the kept checkpoints beyond the newest ``keep``; each is renamed out of the way
        first, so none is ever seen half removed."""
        for path in self.history()[:-keep] if keep else []:
            parked = path.with_name(f".removing-{path.name}")
            os.replace(path, parked)
            shutil.rmtree(parked, ignore_errors=True)

    def existing_checkpoints(self) -> tuple[Path | None, Path | None]:
        """The whole ``(latest, best)`` checkpoints saved so far (None where there is none)."""
        return existing_checkpoint(self.checkpoint(LATEST)), existing_checkpoint(self.checkpoint(BEST))

    def read_settings(self) -> tuple[TrainConfig, dict]:
        """The settings and the corpus record saved in ``config.json``."""
        if not self.config_file.is_file():
            raise SettingError(f"{self.path}: no run to resume ({CONFIG_FILE} is missing); drop --resume to "
                               f"start one")
        values = read_json(self.config_file)
        check_kind(self.path, values, LANGUAGE_MODEL)
        if values.get("format") != RUN_FORMAT or not isinstance(values.get("training"), dict):
            raise CheckpointError(f"{self.config_file}: not a charrnn run configuration")
        try:
            settings = TrainConfig.from_dict(values["training"], source=str(self.config_file))
        except TypeError as error:
            raise CheckpointError(f"{self.config_file}: bad training settings ({error})") from None
        return settings, values.get("corpus") or {}

    def write_settings(self, settings: TrainConfig, vocabulary: Vocabulary, corpus: dict) -> None:
        """``config.json`` and ``vocab.json`` of the run."""
        write_json(self.config_file, {
            "format": RUN_FORMAT, "version": 1, "kind": LANGUAGE_MODEL,
            "model": settings.model_config(vocabulary.size).to_dict(),
            "training": settings.to_dict(), "corpus": corpus,
        })
        vocabulary.save(self.vocabulary_file)

    def prepare_corpus(self, paths: list[str], encoding: str, extends: Vocabulary | None = None) -> PreparedCorpus:
        """Encode a new run's corpus into ``data/`` (a fine-tuned run's vocabulary ``extends`` the model's)."""
        return prepare_corpus(paths, self.data, encoding, extends=extends)

    def open_corpus(self, saved_corpus: dict, encoding: str) -> PreparedCorpus:
        """The prepared corpus of a run; re-prepared from the recorded files if it went missing."""
        try:
            return PreparedCorpus.open(self.data)
        except CharRNNError as error:
            paths = saved_corpus.get("paths")
            if not paths:
                raise
            try:
                vocabulary = Vocabulary.load(self.vocabulary_file)
                return prepare_corpus(paths, self.data, encoding, vocabulary=vocabulary)
            except CharRNNError as second:
                raise CharRNNError(f"--resume: the run's prepared corpus is unusable ({error}) and cannot be "
                                   f"prepared again ({second})") from None

    def undo_of_new_entries(self) -> Callable[[], None]:
        """A function that removes what a run adds to the folder from now on (the folder too, if
        it does not exist yet): what a new run's failed start calls to leave nothing behind."""
        created = not self.path.exists()
        existed = {name for name in RUN_ENTRIES if (self.path / name).exists()}

        def undo() -> None:
            if created:
                shutil.rmtree(self.path, ignore_errors=True)
                return
            for name in RUN_ENTRIES:
                if name not in existed:
                    target = self.path / name
                    if target.is_dir():
                        shutil.rmtree(target, ignore_errors=True)
                    else:
                        target.unlink(missing_ok=True)
        return undo
