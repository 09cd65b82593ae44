"""The training loop: truncated back-propagation through time over a prepared corpus.

:func:`train` is what ``charrnn train`` calls. It prepares the corpus inside the run
directory, builds a :class:`~charrnn.model.CharLM`, and hands both to a :class:`Trainer`,
whose :meth:`Trainer.run` is a plain loop::

    for each batch (B streams × T characters):
        logits, state = model(x, carried_state)     # state carried from the previous batch
        loss = cross_entropy(logits, y)             # nats per character
        backward, clip the gradient norm, Adam step at the scheduled learning rate
        every eval_every steps: validation loss, save latest (and best) checkpoint

The carried state is detached after each batch and reset at each epoch's start. A run
directory holds ``config.json``, ``vocab.json``, the prepared corpus (``data/``),
``checkpoints/latest`` and ``checkpoints/best``, ``metrics.jsonl`` and ``loss.png``.

A resumed run continues exactly: the checkpoint holds the weights, Adam's moments, the data
position, the carried state and every random generator, so on a CPU an interrupted and
resumed run computes the same numbers as one that was never interrupted.
"""

from __future__ import annotations

import math
import shutil
import signal
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from charrnn import distributed
from charrnn.batches import StreamBatches
from charrnn.checkpoint import (
    BEST,
    CHECKPOINTS_FOLDER,
    CONFIG_FILE,
    LATEST,
    MODEL_FILE,
    VOCAB_FILE,
    existing_checkpoint,
    load_state_tensors,
    lock_run_directory,
    optimizer_state_from_tensors,
    optimizer_state_to_tensors,
    random_state_tensors,
    read_vocabulary,
    restore_random_state,
    save_model_checkpoint,
)
from charrnn.corpus import PreparedCorpus, find_text_files, prepare_corpus
from charrnn.distributed import DistributedContext
from charrnn.errors import CharRNNError
from charrnn.evaluation import evaluate
from charrnn.files import CheckpointError, load_tensors, read_json, write_json
from charrnn.model import CharLM, detach_state
from charrnn.reporting import MetricsLog, Progress, clock, plot_losses
from charrnn.training_config import DEFAULT_MAX_STEPS, TrainConfig, resolve_resume
from charrnn.unroll import map_state

RUN_FORMAT = "charrnn-run"
DATA_FOLDER = "data"
METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"
OPTIMIZER_STEM, TRAINER_STEM = "optimizer", "trainer"
#: A loss above this many times a uniform guess's (ln V) means training has blown up.
EXPLODING_FACTOR = 3.0
#: Optimizer settings that say how, not what, it computes: kept from the running process on resume.
_IMPLEMENTATION_FLAGS = ("fused", "foreach", "capturable", "differentiable")
EXIT_CODES = {"max_steps": 0, "epochs": 0, "max_time": 0, "interrupted": 130, "terminated": 143,
              "diverged": 1}


@dataclass
class TrainResult:
    """How a run ended.

    Attributes
    ----------
    run_dir : Path
    stop_reason : str
        'max_steps', 'epochs' or 'max_time' (finished), 'interrupted' (SIGINT),
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
        Training characters per second in this session (all processes together).
    is_main : bool
        Whether this process is rank 0 (the one that wrote the files and reports).
    """

    run_dir: Path
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


def learning_rate_at(settings: TrainConfig, step: int, progress: float) -> float:
    """The learning rate of step ``step`` (0-based) when the run is ``progress`` (0..1) done.

    Linear warm-up over ``warmup_steps``, times a decay from ``learning_rate`` to
    ``final_learning_rate`` along the run (cosine, linear or none). Progress is measured in
    steps or in time, whichever limit is nearer, so a ``--max-time`` run decays to its end.
    """
    warm = min(1.0, (step + 1) / settings.warmup_steps) if settings.warmup_steps else 1.0
    progress = min(max(progress, 0.0), 1.0)
    top, bottom = settings.learning_rate, settings.final_learning_rate
    if settings.decay == "cosine":
        rate = bottom + (top - bottom) * 0.5 * (1.0 + math.cos(math.pi * progress))
    elif settings.decay == "linear":
        rate = top + (bottom - top) * progress
    else:
        rate = top
    return rate * warm


# -- signals -----------------------------------------------------------------------------------
class _StopSignals:
    """Turn SIGINT and SIGTERM into a request to stop after the current step.

    A second signal of either kind stops at once (KeyboardInterrupt). Installed only in the
    main thread, where Python delivers signals; previous handlers come back on exit.
    """

    def __init__(self):
        self.received: int | None = None
        self._previous = {}

    def _handle(self, number, frame):
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = number

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc):
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        return False


class _Diverged(Exception):
    """The loss or the gradient went non-finite or exploded."""


# -- state <-> tensors ---------------------------------------------------------------------------
def _leaves(state) -> list[torch.Tensor]:
    """The tensors of a state structure in a fixed order."""
    leaves: list[torch.Tensor] = []
    map_state(lambda tensor: leaves.append(tensor) or tensor, state)
    return leaves


def _fill(template, leaves: list[torch.Tensor]):
    """``template``'s structure holding ``leaves`` (in :func:`_leaves`'s order)."""
    iterator = iter(leaves)
    return map_state(lambda tensor: next(iterator).to(tensor.device, tensor.dtype), template)


# -- the trainer -----------------------------------------------------------------------------------
class Trainer:
    """One training run on a prepared corpus: model, optimizer, data streams and the loop.

    Parameters
    ----------
    settings : TrainConfig
    corpus : PreparedCorpus
    run_dir : Path
        Where rank 0 writes checkpoints, metrics and the plot.
    context : DistributedContext, optional
        This process's place among several (default: a lone process).
    device : torch.device, optional
        Default: :func:`charrnn.distributed.select_device` of ``settings.device``.
    progress : bool, optional
        True: a bar or log lines; False: silent; None: like True.
    """

    def __init__(self, settings: TrainConfig, corpus: PreparedCorpus, run_dir: str | Path,
                 context: DistributedContext | None = None, device: torch.device | None = None,
                 progress: bool | None = None):
        self.settings = settings
        self.context = context or DistributedContext()
        self.device = device or distributed.select_device(settings.device, self.context)
        self.run_dir = Path(run_dir)
        self.vocabulary = corpus.vocabulary
        self.model_config = settings.model_config(self.vocabulary.size)
        corpus.check_split(settings.val_fraction, settings.sequence_length)
        train_ids, self.val_ids = corpus.split(settings.val_fraction)
        self.batches = StreamBatches(train_ids, settings.batch_size, settings.sequence_length,
                                     self.context.rank, self.context.world_size)

        torch.manual_seed(settings.seed)
        np.random.seed(settings.seed)
        self.model = CharLM(self.model_config).to(self.device)
        self.network = distributed.wrap_model(self.model, self.context, self.device)
        torch.manual_seed(settings.seed + self.context.rank)  # each rank its own dropout masks
        self.optimizer = _make_adam(self.model, settings, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=settings.amp == "fp16" and self.device.type == "cuda")
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(settings.amp)
        if self.amp_dtype is not None and self.device.type != "cuda":
            self.amp_dtype = None  # autocast is a GPU option; on other devices train in float32

        self.loss_limit = EXPLODING_FACTOR * max(math.log(self.vocabulary.size), 1.0)
        self.total_steps = self._total_steps()
        self.characters_per_step = settings.batch_size * settings.sequence_length * self.context.world_size
        self.step = 0
        self.carried = None  # the recurrent state carried from batch to batch (None: zeros)
        self.best_val_loss: float | None = None
        self.last_val_loss: float | None = None
        self.last_train_loss: float | None = None
        self.window = [0.0, 0]  # sum and count of training losses since the last log line
        self.elapsed_before = 0.0  # training seconds of earlier sessions
        self.metrics = MetricsLog(self.run_dir / METRICS_FILE)
        self.progress_enabled = progress is not False and self.context.is_main
        self._stop_request: int | None = None
        self._session_start = time.perf_counter()
        self._session_first_step = 0
        self._notes: list[str] = []  # said once the loop starts

    # -- limits and schedule ---------------------------------------------------------------------
    def _total_steps(self) -> int | None:
        settings = self.settings
        limits = []
        if settings.max_steps is not None:
            limits.append(settings.max_steps)
        if settings.epochs is not None:
            limits.append(max(1, math.ceil(settings.epochs * self.batches.steps_per_epoch)))
        if not limits and settings.max_time is None:
            limits.append(DEFAULT_MAX_STEPS)
        return min(limits) if limits else None

    def progress_fraction(self, elapsed: float) -> float:
        """How far the run is, 0..1, by steps or time, whichever limit is nearer."""
        fractions = [0.0]
        if self.total_steps:
            fractions.append(self.step / self.total_steps)
        if self.settings.max_time:
            fractions.append(elapsed / self.settings.max_time)
        return max(fractions)

    def request_stop(self, signal_number: int = signal.SIGINT) -> None:
        """Ask the loop to save and stop after the current step, as SIGINT or SIGTERM would."""
        self._stop_request = signal_number

    # -- one step ----------------------------------------------------------------------------------
    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, learning_rate: float,
                   flags: Callable[[], Sequence[float]] = tuple):
        """One optimizer step on ``x``, ``y`` ``(B, T)``; returns the loss and ``flags()`` averaged
        over the processes, so that every process takes the same decisions. ``flags`` is read
        after the backward pass, so a signal that arrives during the step is seen at its end.

        Raises ``_Diverged`` (without stepping) when the loss or the gradient norm is not finite,
        or the loss explodes.
        """
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        with self._autocast():
            logits, state = self.network(x, self.carried)  # (B, T, V)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        self.carried = detach_state(state)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        shared = torch.tensor([loss.item(), *flags()], dtype=torch.float64)
        if self.context.is_distributed:  # NCCL exchanges GPU tensors only
            shared = distributed.all_reduce_mean(shared.to(self.device), self.context).cpu()
        shared = shared.tolist()
        mean_loss = shared[0]
        if not math.isfinite(mean_loss) or mean_loss > self.loss_limit:
            raise _Diverged(f"the training loss is {mean_loss:.4g}" +
                            ("" if not math.isfinite(mean_loss) else
                             f", above {self.loss_limit:.3g} ({EXPLODING_FACTOR:g} x a uniform guess)"))
        self.scaler.unscale_(self.optimizer)
        if self.settings.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip)
            if not self.scaler.is_enabled() and not bool(torch.isfinite(norm)):
                raise _Diverged(f"the gradient norm is {float(norm):.4g}")
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return mean_loss, shared[1:]

    # -- evaluation --------------------------------------------------------------------------------
    def evaluate(self) -> float:
        """Validation loss (nats) on at most ``eval_characters`` characters; rank 0 computes it."""
        loss = None
        if self.context.is_main:
            # The global batch as streams, so the figure does not depend on the number of processes.
            result = evaluate(self.model, self.val_ids, batch_size=self.settings.batch_size * self.context.world_size,
                              sequence_length=self.settings.sequence_length, device=self.device,
                              max_characters=self.settings.eval_characters or None)
            loss = result.loss
        return distributed.broadcast_json(loss, self.context, self.device)

    # -- checkpoints -------------------------------------------------------------------------------
    def _rank_tensors(self) -> dict[str, torch.Tensor]:
        tensors = random_state_tensors()
        if self.carried is not None:
            for index, leaf in enumerate(_leaves(self.carried)):
                tensors[f"carried.{index}"] = leaf.float()
        return tensors

    def save(self, kinds: Sequence[str] = (LATEST,)) -> Path | None:
        """Save the whole training state as ``checkpoints/<kind>`` for each kind (rank 0 writes;
        every rank must call this, since each contributes its generators and carried state)."""
        per_rank = distributed.gather_tensors(self._rank_tensors(), self.context, self.device)
        if not self.context.is_main:
            return None
        optimizer_tensors, optimizer_structure = optimizer_state_to_tensors(self.optimizer.state_dict())
        trainer_tensors = {f"rank{rank}.{name}": tensor for rank, tensors in enumerate(per_rank)
                           for name, tensor in tensors.items()}
        trainer_state = {
            "step": self.step, "data": self.batches.state_dict(), "world_size": self.context.world_size,
            "carried": self.carried is not None, "best_val_loss": self.best_val_loss,
            "last_val_loss": self.last_val_loss, "elapsed": self.elapsed(),
            "metrics_window": list(self.window), "optimizer": optimizer_structure,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "schedule": {"total_steps": self.total_steps, "max_time": self.settings.max_time,
                         "learning_rate": self.optimizer.param_groups[0]["lr"]},
        }
        folder = None
        for kind in kinds:
            folder = save_model_checkpoint(
                self.run_dir / CHECKPOINTS_FOLDER / kind, self.model, self.vocabulary, self.model_config,
                extra_tensors={OPTIMIZER_STEM: optimizer_tensors, TRAINER_STEM: trainer_tensors},
                extra_json={TRAINER_STEM: trainer_state}, training=self.settings.to_dict())
        return folder

    def restore(self, folder: Path) -> None:
        """Continue from the checkpoint in ``folder`` (weights, optimizer, data position,
        carried state, generators, metrics), as :meth:`save` left it."""
        trainer_file = folder / f"{TRAINER_STEM}.json"
        state = read_json(trainer_file)
        self.model.load_state_dict(load_state_tensors(folder / MODEL_FILE, self.model.state_dict()))
        optimizer_file = folder / f"{OPTIMIZER_STEM}.safetensors"
        try:
            if state.get("world_size") != self.context.world_size:
                raise CharRNNError(f"the run was trained by {state.get('world_size')} process(es), now "
                                   f"{self.context.world_size}; resume it with the same number")
            # The implementation flags (fused kernels, ...) belong to this machine, not the saved one.
            flags = [{key: group[key] for key in _IMPLEMENTATION_FLAGS if key in group}
                     for group in self.optimizer.param_groups]
            self.optimizer.load_state_dict(optimizer_state_from_tensors(
                load_tensors(optimizer_file), state["optimizer"], optimizer_file))
            for group, kept in zip(self.optimizer.param_groups, flags):
                group.update(kept)
            tensors = load_tensors(folder / f"{TRAINER_STEM}.safetensors")
            prefix = f"rank{self.context.rank}."
            mine = {name[len(prefix):]: tensor for name, tensor in tensors.items() if name.startswith(prefix)}
            restore_random_state(mine)
            self.carried = None
            same_streams = all(state["data"].get(name) == getattr(self.settings, name)
                               for name in ("batch_size", "sequence_length"))
            if not same_streams:  # changed under --override: the streams are cut anew
                self.batches.epoch = int(state["data"]["epoch"]) + 1
                self._notes.append("the batch size or sequence length changed: the data streams start "
                                   "over at the next epoch")
            else:
                self.batches.load_state_dict(state["data"])
            if state["carried"] and same_streams:
                template = self.model.zero_state(self.settings.batch_size, self.device)
                leaves = [mine[f"carried.{index}"] for index in range(len(_leaves(template)))]
                self.carried = _fill(template, leaves)
            if state.get("scaler") and self.scaler.is_enabled():
                self.scaler.load_state_dict(state["scaler"])
            self.step = int(state["step"])
            self.best_val_loss = state["best_val_loss"]
            self.last_val_loss = state["last_val_loss"]
            self.elapsed_before = float(state["elapsed"])
            self.window = [float(state["metrics_window"][0]), int(state["metrics_window"][1])]
        except CheckpointError:
            raise
        except CharRNNError as error:
            raise CharRNNError(f"--resume: {folder}: {error}") from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as error:
            raise CheckpointError(f"{trainer_file}: training state is damaged "
                                  f"({type(error).__name__}: {str(error).splitlines()[0][:200]})") from None
        if self.context.is_main:
            self.metrics.truncate_after(self.step)

    # -- the loop ----------------------------------------------------------------------------------
    def elapsed(self) -> float:
        """Seconds of training so far, earlier sessions included."""
        return self.elapsed_before + (time.perf_counter() - self._session_start)

    def _finished_reason(self) -> str | None:
        if self.total_steps is not None and self.step >= self.total_steps:
            limits = self.settings
            if limits.max_steps is not None and self.step >= limits.max_steps:
                return "max_steps"
            return "epochs" if limits.epochs is not None else "max_steps"
        return None

    def _log_line(self, record: dict) -> str:
        total = f"/{self.total_steps}" if self.total_steps else ""
        parts = [f"step {record['step']}{total}"]
        if record.get("train_loss") is not None:
            parts.append(f"loss {record['train_loss']:.4f}")
        if record.get("val_loss") is not None:
            parts.append(f"val {record['val_loss']:.4f}")
        parts += [f"lr {record['learning_rate']:.2e}", f"{record['characters_per_second']:,.0f} chars/s",
                  f"{clock(record['elapsed'])} elapsed"]
        eta = self._speed_and_eta()[1]
        if eta is not None:
            parts.append(f"ETA {clock(eta)}")
        return " | ".join(parts)

    def run(self, callback: Callable[["Trainer"], None] | None = None) -> TrainResult:
        """Train until a limit, a signal or divergence; save and report.

        ``callback(trainer)``, if given, runs after every step (it may call
        :meth:`request_stop`).
        """
        self._session_start = self._window_start = time.perf_counter()
        self._session_first_step = self.step
        progress = Progress(self.total_steps, self.step, enabled=self.progress_enabled)
        for line in self._describe() + self._notes:
            progress.log(line)
        detail = ""
        try:
            with _StopSignals() as signals:
                while (stop_reason := self._finished_reason()) is None:
                    x, y, starts_epoch = self.batches.next_batch()  # (B, T) each
                    if starts_epoch:
                        self.carried = None  # the streams start over: forget their ends
                    rate = learning_rate_at(self.settings, self.step, self.progress_fraction(self.elapsed()))
                    try:
                        loss, requests = self.train_step(x, y, rate, lambda: self._requests(signals))
                    except _Diverged as error:
                        stop_reason, detail = "diverged", str(error)
                        break
                    self.step += 1
                    self.window[0] += loss
                    self.window[1] += 1
                    progress.step(loss, *self._speed_and_eta())
                    if callback is not None:
                        callback(self)
                    stop_reason = self._requested_stop(requests) or self._finished_reason()
                    self._log_and_evaluate(rate, stop_reason, progress)
                    if stop_reason:
                        break
        finally:
            progress.close()
        return self._finish(stop_reason, detail)

    def _requests(self, signals: _StopSignals) -> list[float]:
        """This process's wishes after a step: [SIGINT?, SIGTERM?, out of time?]."""
        request = signals.received or self._stop_request
        time_up = self.settings.max_time is not None and self.elapsed() >= self.settings.max_time
        return [float(request == signal.SIGINT), float(request == signal.SIGTERM), float(time_up)]

    @staticmethod
    def _requested_stop(requests: Sequence[float]) -> str | None:
        """The stop that any process asked for (``requests`` averaged over the processes)."""
        interrupted, terminated, timed_out = (value > 0 for value in requests)
        if interrupted or terminated:
            return "interrupted" if interrupted else "terminated"
        return "max_time" if timed_out else None

    def _speed_and_eta(self) -> tuple[float, float | None]:
        steps = self.step - self._session_first_step
        seconds = max(time.perf_counter() - self._session_start, 1e-9)
        estimates = []
        if self.settings.max_time:
            estimates.append(self.settings.max_time - self.elapsed())
        if self.total_steps and steps:
            estimates.append((self.total_steps - self.step) * seconds / steps)
        return steps * self.characters_per_step / seconds, min(estimates) if estimates else None

    def _log_and_evaluate(self, rate: float, stop_reason: str | None, progress: Progress) -> None:
        """The metrics line every ``log_every`` steps; validation and checkpoints every
        ``eval_every`` steps and at the end of a finished run."""
        finished = stop_reason is not None and EXIT_CODES[stop_reason] == 0
        evaluate_now = self.step % self.settings.eval_every == 0 or finished
        if not evaluate_now and self.step % self.settings.log_every:
            return
        record = self._flush_window(time.perf_counter() - self._window_start, rate)
        improved = self._evaluate(record) if evaluate_now else False
        # The line goes to the log before the checkpoint is saved: a run killed in between
        # resumes from the checkpoint before, which drops the line and logs the step again.
        if self.context.is_main:
            self.metrics.append(record)
            progress.log(self._log_line(record))
        if evaluate_now:
            self.save((LATEST, BEST) if improved else (LATEST,))
        self._window_start = time.perf_counter()  # evaluation time is not training time

    def _describe(self) -> list[str]:
        """What is about to happen, in a line or two."""
        config, settings = self.model_config, self.settings
        parameters = sum(parameter.numel() for parameter in self.model.parameters())
        limits = [f"{self.total_steps} steps"] if self.total_steps else []
        if settings.max_time:
            limits.append(f"{clock(settings.max_time)}")
        start = f"resuming at step {self.step}" if self.step else "training"
        processes = f" x {self.context.world_size} processes" if self.context.is_distributed else ""
        return [f"{start}: {config.num_layers}x{config.hidden_size} {config.cell} ({parameters:,} parameters) on "
                f"{len(self.batches.ids):,} characters ({self.vocabulary.size} distinct), batch "
                f"{settings.batch_size}{processes} x {settings.sequence_length}, {self.device}, "
                f"until {' or '.join(limits)}; run directory {self.run_dir}"]

    def _flush_window(self, seconds: float, rate: float) -> dict:
        """The metrics line for the steps since the last one."""
        total, count = self.window
        self.window = [0.0, 0]
        self.last_train_loss = total / count if count else None
        return {"step": self.step, "epoch": self.batches.epoch, "train_loss": self.last_train_loss,
                "learning_rate": rate, "characters_per_second": count * self.characters_per_step / max(seconds, 1e-9),
                "elapsed": self.elapsed()}

    def _evaluate(self, record: dict) -> bool:
        """Validate, adding the loss to ``record``; whether it is the best so far."""
        val_loss = self.evaluate()
        self.last_val_loss = val_loss
        record["val_loss"] = val_loss
        record["val_bits_per_character"] = val_loss / math.log(2)
        improved = self.best_val_loss is None or val_loss < self.best_val_loss
        if improved:
            self.best_val_loss = val_loss
        return improved

    def _finish(self, stop_reason: str, detail: str) -> TrainResult:
        elapsed = self.elapsed()
        latest = best = None
        if stop_reason in ("interrupted", "terminated"):
            self.save((LATEST,))
        if self.context.is_main:
            checkpoints = self.run_dir / CHECKPOINTS_FOLDER
            latest, best = existing_checkpoint(checkpoints / LATEST), existing_checkpoint(checkpoints / BEST)
            try:
                plot_losses(self.metrics.read(), self.run_dir / PLOT_FILE)
            except OSError as error:  # the run itself is saved; a missing picture is not worth failing it
                print(f"charrnn: warning: could not write {self.run_dir / PLOT_FILE} ({error.strerror})",
                      file=sys.stderr)
        session_seconds = time.perf_counter() - self._session_start
        speed = 0.0
        if session_seconds > 0:
            speed = (self.step - self._session_first_step) * self.characters_per_step / session_seconds
        if stop_reason == "diverged":
            kept = f"the last good checkpoint is {latest}" if latest else "no checkpoint was saved before"
            message = f"training stopped at step {self.step + 1}: {detail}; {kept}"
        elif stop_reason in ("interrupted", "terminated"):
            name = "SIGINT" if stop_reason == "interrupted" else "SIGTERM"
            message = (f"{name}: stopped at step {self.step}; checkpoint saved to {latest}; continue with "
                       f"--resume")
        else:
            limit = {"max_steps": f"{self.step} steps", "epochs": f"{self.settings.epochs} epoch(s)",
                     "max_time": f"{self.settings.max_time} s"}[stop_reason]
            val = f", validation loss {self.last_val_loss:.4f}" if self.last_val_loss is not None else ""
            best_text = f", best {self.best_val_loss:.4f}" if self.best_val_loss is not None else ""
            message = f"finished after {limit} ({clock(elapsed)}){val}{best_text}; run in {self.run_dir}"
        return TrainResult(run_dir=self.run_dir, stop_reason=stop_reason, message=message, step=self.step,
                           train_loss=self.last_train_loss, val_loss=self.last_val_loss,
                           best_val_loss=self.best_val_loss, latest_checkpoint=latest, best_checkpoint=best,
                           elapsed=elapsed, characters_per_second=speed, is_main=self.context.is_main)


def _make_adam(model: torch.nn.Module, settings: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """Adam (AdamW when there is weight decay), with PyTorch's fused kernel where it has one."""
    kind = torch.optim.AdamW if settings.weight_decay > 0 else torch.optim.Adam
    options = {"lr": settings.learning_rate, "weight_decay": settings.weight_decay}
    if device.type in ("cuda", "cpu"):
        try:
            return kind(model.parameters(), fused=True, **options)
        except (RuntimeError, TypeError, ValueError):
            pass
    return kind(model.parameters(), **options)


# -- the library entry point -------------------------------------------------------------------
def _run_settings(run_dir: Path) -> tuple[TrainConfig, dict]:
    """The settings and corpus record saved in a run directory's ``config.json``."""
    file = run_dir / CONFIG_FILE
    values = read_json(file)
    if not isinstance(values, dict) or values.get("format") != RUN_FORMAT or not isinstance(values.get("training"), dict):
        raise CheckpointError(f"{file}: not a charrnn run configuration")
    try:
        settings = TrainConfig.from_dict(values["training"], source=str(file))
    except TypeError as error:
        raise CheckpointError(f"{file}: bad training settings ({error})") from None
    return settings, values.get("corpus") or {}


def _write_run_files(run_dir: Path, settings: TrainConfig, corpus: PreparedCorpus, corpus_paths: list[str]) -> None:
    write_json(run_dir / CONFIG_FILE, {
        "format": RUN_FORMAT, "version": 1,
        "model": settings.model_config(corpus.vocabulary.size).to_dict(),
        "training": settings.to_dict(),
        "corpus": {"paths": corpus_paths, "encoding": settings.encoding, "characters": len(corpus)},
    })
    write_json(run_dir / VOCAB_FILE, {"characters": corpus.vocabulary.characters})


def _open_run_corpus(run_dir: Path, saved_corpus: dict, settings: TrainConfig) -> PreparedCorpus:
    """The prepared corpus of a run; re-prepared from the recorded files if it went missing."""
    try:
        return PreparedCorpus.open(run_dir / DATA_FOLDER)
    except CharRNNError as error:
        paths = saved_corpus.get("paths")
        if not paths:
            raise
        try:
            vocabulary = read_vocabulary(run_dir / VOCAB_FILE)
            return prepare_corpus(paths, run_dir / DATA_FOLDER, settings.encoding, vocabulary=vocabulary)
        except CharRNNError as second:
            raise CharRNNError(f"--resume: the run's prepared corpus is unusable ({error}) and cannot be "
                               f"prepared again ({second})") from None


def train(config: TrainConfig | dict | None, corpus_paths: Sequence[str | Path] = (), out_dir: str | Path = "run",
          resume: bool = False, override: bool = False, progress: bool | None = None,
          callback: Callable[[Trainer], None] | None = None,
          context: DistributedContext | None = None) -> TrainResult:
    """Train a character language model on text files; what ``charrnn train`` does.

    Parameters
    ----------
    config : TrainConfig, dict or None
        A new run's settings (a :class:`TrainConfig`, or a dict of its fields to change from
        the defaults). When resuming: a dict of the settings to change, or None.
    corpus_paths : sequence of paths
        Text files and folders. A resumed run trains on its own prepared copy; paths given
        then must be the run's.
    out_dir : path
        The run directory. A new run refuses one that already holds a run.
    resume : bool
        Continue the run in ``out_dir`` from its latest checkpoint.
    override : bool
        Let a resumed run change settings such as the learning rate (never the model's shape
        or the data split).
    progress : bool, optional
        False silences the progress bar and log lines.
    callback : callable, optional
        ``callback(trainer)`` after every step.
    context : DistributedContext, optional
        Default: read from ``torchrun``'s environment variables.

    Returns
    -------
    TrainResult

    Raises
    ------
    CharRNNError
        For bad settings or files (exit status 2) and failures at run time (1).
    """
    context = context or distributed.detect_context()
    run_dir = Path(out_dir)
    paths = [str(path.resolve()) for path in find_text_files(corpus_paths)] if corpus_paths else []
    if not resume and not paths:
        raise CharRNNError("no corpus given: name at least one text file or folder to train on")
    if run_dir.exists() and not run_dir.is_dir():
        raise CharRNNError(f"{run_dir}: exists and is not a folder; choose another --out")
    created = not run_dir.exists()
    existed = {name for name in _RUN_ENTRIES if (run_dir / name).exists()}
    # A run that fails before its first step leaves the folder as it found it (a resumed run's
    # folder, already there, is never touched).
    clean_up_on_failure = context.is_main and (created or not resume)
    with lock_run_directory(run_dir) if context.is_main else nullcontext():
        try:
            settings, saved_corpus = _settle_settings(run_dir, config, paths, resume, override)
            device = distributed.select_device(settings.device, context)
        except BaseException:
            if clean_up_on_failure:
                _remove_failed_start(run_dir, created, existed)
            raise
        torch.set_num_threads(settings.num_threads or distributed.default_num_threads(context))
        distributed.start(context, device)
        try:
            try:
                trainer = _start_trainer(run_dir, settings, paths, saved_corpus, resume, context, device, progress)
            except BaseException:
                if clean_up_on_failure:
                    _remove_failed_start(run_dir, created, existed)
                raise
            result = trainer.run(callback)
            distributed.barrier(context)  # leave together: a rank that exits early can abort gloo
            return result
        finally:
            distributed.stop(context)


def _settle_settings(run_dir: Path, config, paths: list[str], resume: bool, override: bool):
    """The settings of the run about to start, and the corpus record of the run resumed."""
    if not resume:
        if (run_dir / CONFIG_FILE).exists():
            raise CharRNNError(f"{run_dir}: already holds a run; pass --resume to continue it or "
                               f"choose another --out")
        settings = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(dict(config or {}))
        return settings, {"paths": paths}
    if not (run_dir / CONFIG_FILE).is_file():
        raise CharRNNError(f"{run_dir}: no run to resume ({CONFIG_FILE} is missing); drop --resume to "
                           f"start one")
    saved, saved_corpus = _run_settings(run_dir)
    requested = config.to_dict() if isinstance(config, TrainConfig) else dict(config or {})
    settings = resolve_resume(saved, requested, override, str(run_dir / CONFIG_FILE))
    if paths and paths != saved_corpus.get("paths", paths):
        raise CharRNNError(f"--resume: the corpus differs from the run's "
                           f"({', '.join(saved_corpus.get('paths', []))}); leave CORPUS out to resume on "
                           f"the run's own prepared copy")
    return settings, saved_corpus


def _start_trainer(run_dir: Path, settings: TrainConfig, paths: list[str], saved_corpus: dict, resume: bool,
                   context: DistributedContext, device: torch.device, progress) -> Trainer:
    """Prepare (or reopen) the corpus, build the trainer, restore it when resuming."""
    if context.is_main:
        (run_dir / CHECKPOINTS_FOLDER).mkdir(parents=True, exist_ok=True)
        corpus = (_open_run_corpus(run_dir, saved_corpus, settings) if resume else
                  prepare_corpus(paths, run_dir / DATA_FOLDER, settings.encoding))
    distributed.barrier(context)  # the others open what rank 0 prepared
    if not context.is_main:
        corpus = PreparedCorpus.open(run_dir / DATA_FOLDER)
    trainer = Trainer(settings, corpus, run_dir, context, device, progress)
    if resume:
        folder = existing_checkpoint(run_dir / CHECKPOINTS_FOLDER / LATEST)
        if folder is not None:
            trainer.restore(folder)
        elif context.is_main:
            trainer.metrics.truncate_after(0)  # killed before its first checkpoint: start over
    if context.is_main:
        _write_run_files(run_dir, settings, corpus, saved_corpus.get("paths", paths))
    return trainer


#: What a run adds to its folder (removed again when a new run fails before its first step).
_RUN_ENTRIES = (DATA_FOLDER, CHECKPOINTS_FOLDER, CONFIG_FILE, VOCAB_FILE, METRICS_FILE, PLOT_FILE, ".lock")


def _remove_failed_start(run_dir: Path, created: bool, existed: set[str]) -> None:
    """Leave nothing behind when a new run fails before its first step."""
    if created:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for name in _RUN_ENTRIES:
        if name not in existed:
            target = run_dir / name
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
