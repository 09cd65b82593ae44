"""A trainer's events, and the :class:`Callback` through which anything subscribes to them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EXIT_CODES = {"max_steps": 0, "epochs": 0, "max_time": 0, "early_stop": 0, "interrupted": 130,
              "terminated": 143, "diverged": 1}


@dataclass
class StepEvent:
    """One optimizer step, as its subscribers see it.

    ``record`` is the metrics line (``step``, ``epoch``, ``train_loss``, ``learning_rate``,
    ``characters_per_second`` (the task's examples: texts for a classifier; over the wall clock
    since the last line, evaluations and checkpoints included), ``elapsed`` and,
    after an evaluation, ``val_loss``) on the steps that log one, else None. ``epoch_ended`` is True after an epoch's last batch.
    """

    step: int
    epoch: int
    loss: float
    learning_rate: float
    epoch_ended: bool
    record: dict | None = None


@dataclass
class EvaluationEvent:
    """A validation: its loss (nats) and whether it is the best so far."""

    step: int
    val_loss: float
    improved: bool


@dataclass
class CheckpointEvent:
    """A checkpoint saved: its kinds (``'latest'``, ``'best'``) and its folder."""

    step: int
    kinds: tuple[str, ...]
    folder: Path | None


@dataclass
class TrainResult:
    """How a run ended.

    Attributes
    ----------
    run_dir : Path or None
    stop_reason : str
        'max_steps', 'epochs' or 'max_time' (finished), 'early_stop' (validation stopped
        improving for ``early_stop`` evaluations), 'interrupted' (SIGINT),
        'terminated' (SIGTERM) or 'diverged' (NaN or exploding loss).
    message : str
        One line for the person who started the run.
    step : int
        Optimizer steps taken in all (earlier sessions of a resumed run included).
    train_loss, val_loss, best_val_loss : float or None
        The last logged training loss, the last validation loss and the best one (nats).
    latest_checkpoint, best_checkpoint : Path or None
    elapsed : float
        Seconds of training in all.
    characters_per_second : float
        Training examples (characters for a language model) per second of this session's
        wall clock, all processes together.
    is_main : bool
        Whether this process is rank 0 (the one that wrote the files and reports).
    """

    run_dir: Path | None
    stop_reason: str
    message: str
    step: int
    train_loss: float | None
    val_loss: float | None
    best_val_loss: float | None
    latest_checkpoint: Path | None
    best_checkpoint: Path | None
    elapsed: float
    characters_per_second: float
    is_main: bool = True

    @property
    def exit_code(self) -> int:
        """The command line's exit status: 0 finished, 130 SIGINT, 143 SIGTERM, 1 diverged."""
        return EXIT_CODES[self.stop_reason]


class Callback:
    """A subscriber to a trainer's events: override the methods wanted (each does nothing here)."""

    def on_start(self, trainer) -> None:
        """Before the first step of :meth:`Trainer.run` or :meth:`Trainer.advance`."""

    def on_step(self, trainer, event: StepEvent) -> None:
        """After each step (and its evaluation, if any; before its checkpoint)."""

    def on_evaluation(self, trainer, event: EvaluationEvent) -> None:
        """After each validation."""

    def on_checkpoint(self, trainer, event: CheckpointEvent) -> None:
        """After each checkpoint is saved."""

    def on_stop(self, trainer, result: TrainResult) -> None:
        """Once, when the run ends (:meth:`Trainer.finish`)."""
