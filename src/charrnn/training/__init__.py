"""Training charrnn's models: one trainer, its settings, its run directory and its reports.

- :mod:`~charrnn.training.settings`: :class:`TrainConfig`, presets, TOML files, resume rules;
- :mod:`~charrnn.training.schedule`: the learning-rate schedule;
- :mod:`~charrnn.training.loop`: the :class:`Trainer`, driven step by step or run to its end;
- :mod:`~charrnn.training.events`: what a trainer tells its subscribers (:class:`Callback`);
- :mod:`~charrnn.training.state`: what a trainer saves to resume exactly;
- :mod:`~charrnn.training.language_model`: the language model's task, checkpoints and :func:`train`;
- :mod:`~charrnn.training.run_directory`: a run folder's layout, lock and cleanup;
- :mod:`~charrnn.training.reporting`: ``metrics.jsonl``, the progress bar, the loss curve;
- :mod:`~charrnn.training.distributed`: several processes under ``torchrun``.
"""

from charrnn.training.events import Callback, CheckpointEvent, EvaluationEvent, StepEvent, TrainResult
from charrnn.training.language_model import LanguageModelTask, language_model_trainer, train
from charrnn.training.loop import Limits, Trainer
from charrnn.training.schedule import Schedule
from charrnn.training.settings import OptimizationSettings, TrainConfig, resolve_settings

__all__ = ["Callback", "CheckpointEvent", "EvaluationEvent", "LanguageModelTask", "Limits", "OptimizationSettings",
           "Schedule", "StepEvent", "TrainConfig", "TrainResult", "Trainer",
           "language_model_trainer", "resolve_settings", "train"]
