"""The trainer: ONE loop for every charrnn model, driven step by step or run to its end.

A :class:`Trainer` holds a model, a *task* (where its batches come from and what its loss
is: :class:`~charrnn.training.language_model.LanguageModelTask`,
:class:`~charrnn.classification.train.ClassificationTask`, or your own), the optimizer and
the schedule. Each step is plain::

    batch = task.next_batch()
    loss = task.loss(network, batch)            # forward, under autocast when asked
    backward, clip the gradient norm, optimizer step at the scheduled learning rate
    with average_decay: average <- decay * average + (1 - decay) * weights
    every eval_every steps: task.evaluate(evaluated_model), then the checkpointer saves

:meth:`Trainer.advance` takes N steps and returns what happened (a :class:`StepEvent` each);
:meth:`Trainer.run` advances until a limit, a signal or divergence, then :meth:`Trainer.finish`.
Whatever watches a run subscribes as a :class:`Callback` (``on_start``, ``on_step``,
``on_evaluation``, ``on_checkpoint``, ``on_stop``): the progress bar and ``metrics.jsonl``
are ordinary subscribers (:mod:`charrnn.training.reporting`).

Examples
--------
Two steps of a language model on a prepared corpus, one at a time:

>>> import tempfile, pathlib, torch
>>> from charrnn.corpus import prepare_corpus
>>> from charrnn.training import TrainConfig, language_model_trainer
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "a.txt").write_text("hello world, " * 40)
>>> corpus = prepare_corpus([folder / "a.txt"], folder / "data")
>>> settings = TrainConfig(hidden_size=8, embedding_size=4, num_layers=1, batch_size=2,
...                        sequence_length=8, max_steps=2, device="cpu")
>>> trainer = language_model_trainer(settings, corpus)
>>> [event.step for event in trainer.advance(5)], trainer.stop_reason
([1, 2], 'max_steps')
"""

from __future__ import annotations

import math
import signal
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from charrnn.devices import check_amp, resolve_amp
from charrnn.training import distributed
from charrnn.training.distributed import DistributedContext
from charrnn.training.events import (EXIT_CODES, Callback, CheckpointEvent, EvaluationEvent, StepEvent,
                                     TrainResult)
from charrnn.training.reporting import clock
from charrnn.training.schedule import Schedule
from charrnn.training.state import TrainingState

#: A loss above this many times a uniform guess's (ln C), and above this many times the run's
#: first loss, means training has blown up.
EXPLODING_FACTOR = 3.0
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Diverged(Exception):
    """The loss or the gradient went non-finite or exploded."""


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


# -- the trainer ---------------------------------------------------------------------------------
@dataclass
class Limits:
    """When a run stops and how often it reports: the first of ``max_steps``, ``epochs`` and
    ``max_time`` (seconds) reached ends it (``default_steps`` when none is given); a metrics
    line every ``log_every`` steps, an evaluation (and checkpoint) every ``eval_every``; with
    ``patience``, the run stops ('early_stop') after that many evaluations in a row without a
    new best."""

    max_steps: int | None = None
    epochs: float | None = None
    max_time: float | None = None
    eval_every: int | None = None
    log_every: int | None = None
    default_steps: int | None = None
    patience: int | None = None


@dataclass
class _Session:
    """This process's clocks: when the session started, and the step it started at; when its
    first step ended, and the step count then (its speed is measured from there, past start-up)."""

    start: float = field(default_factory=time.perf_counter)
    first_step: int = 0
    window_start: float = field(default_factory=time.perf_counter)
    settled: tuple[float, int] | None = None


class Trainer:
    """Trains ``model`` on ``task``: optimizer, schedule, limits, events; see the module's docs.

    Parameters
    ----------
    model : torch.nn.Module
        On ``device`` already.
    task : object
        ``next_batch()``, ``loss(network, batch) -> tensor``, ``epoch``, ``steps_per_epoch``,
        ``examples_per_step`` (all processes together), and optionally ``evaluate(model) ->
        float`` (validation loss, every process gets the same number).
    optimizer : torch.optim.Optimizer
    schedule : Schedule
    limits : Limits
    device : torch.device
    grad_clip : float
        Clip the gradient's global norm (0: no clipping).
    amp : str
        'none', 'bf16', 'fp16' (autocast; fp16 with a gradient scaler) or 'auto' (bf16 where
        the hardware has it: :func:`~charrnn.devices.resolve_amp`).
    loss_limit : float, optional
        A training loss above this, or above :data:`EXPLODING_FACTOR` times this trainer's first
        loss where that is higher, stops the run as diverged (default: none).
    context : DistributedContext, optional
        This process's place among several (default: a lone process).
    network : torch.nn.Module, optional
        What the task calls (``model`` wrapped in DistributedDataParallel, say); default ``model``.
    checkpointer : object, optional
        ``save(trainer, kinds) -> folder``, called at each evaluation, on a signal's stop,
        and ``existing() -> (latest, best)`` for the result.
    callbacks : iterable of Callback
    run_dir : Path, optional
        The run's folder, named in the result's message.
    average_decay : float in [0, 1)
        Above 0: keep an exponential moving average of the weights (Polyak averaging, PyTorch's
        :class:`~torch.optim.swa_utils.AveragedModel`), updated after every step as
        ``average = decay * average + (1 - decay) * weights`` and started at the first step's
        weights; :attr:`evaluated_model` is then the average, which the task evaluates and the
        checkpointer saves as the model. Training itself is unchanged.
    """

    def __init__(self, model: torch.nn.Module, task, optimizer: torch.optim.Optimizer, schedule: Schedule,
                 limits: Limits, device: torch.device, grad_clip: float = 0.0, amp: str = "none",
                 loss_limit: float | None = None, context: DistributedContext | None = None,
                 network: torch.nn.Module | None = None, checkpointer=None, callbacks: Iterable[Callback] = (),
                 run_dir: Path | None = None, average_decay: float = 0.0):
        self.model, self.task, self.optimizer, self.schedule = model, task, optimizer, schedule
        self.limits, self.device, self.grad_clip, self.loss_limit = limits, device, grad_clip, loss_limit
        self.context = context or DistributedContext()
        self.network = network or model
        self.checkpointer = checkpointer
        self.callbacks = list(callbacks)
        self.run_dir = run_dir
        amp = resolve_amp(amp, device)
        check_amp(amp, device)
        self.amp = amp
        self.amp_dtype = AMP_DTYPES.get(amp)
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16" and device.type == "cuda")
        self.average = None if not average_decay else AveragedModel(
            model, multi_avg_fn=get_ema_multi_avg_fn(average_decay))
        self.state = TrainingState()
        self.total_steps = self._total_steps()
        self.stop_reason: str | None = None
        self.last_train_loss: float | None = None
        self.notes: list[str] = []  # said once training starts (by the progress subscriber)
        self.stop_detail = ""  # what went wrong, when the run diverged
        self._loss_ceiling: float | None = None  # loss_limit, raised to the first step's loss x 3
        self._stop_request: int | None = None
        self._signals: _StopSignals | None = None
        self._session: _Session | None = None

    # -- counters --------------------------------------------------------------------------------
    @property
    def step(self) -> int:
        """Optimizer steps taken so far."""
        return self.state.step

    def _total_steps(self) -> int | None:
        limits = self.limits
        steps = [limits.max_steps] if limits.max_steps is not None else []
        if limits.epochs is not None:
            steps.append(max(1, math.ceil(limits.epochs * self.task.steps_per_epoch)))
        if not steps and limits.max_time is None and limits.default_steps is not None:
            steps.append(limits.default_steps)
        return min(steps) if steps else None

    @property
    def evaluated_model(self) -> torch.nn.Module:
        """What is evaluated, sampled and saved as the run's model: the weights' average when
        there is one (``average_decay``), else the trained model itself."""
        return self.model if self.average is None else self.average.module

    def elapsed(self) -> float:
        """Seconds of training so far, earlier sessions included."""
        session = 0.0 if self._session is None else time.perf_counter() - self._session.start
        return self.state.elapsed + session

    def progress_fraction(self, elapsed: float | None = None) -> float:
        """How far the run is, 0..1, by steps or time, whichever limit is nearer."""
        fractions = [0.0]
        if self.total_steps:
            fractions.append(self.step / self.total_steps)
        if self.limits.max_time:
            fractions.append((self.elapsed() if elapsed is None else elapsed) / self.limits.max_time)
        return max(fractions)

    def run_steps(self) -> float | None:
        """How many steps the run makes: its step limit; for a run limited by time, the steps so
        far and those its time left holds at the speed since this session's first step (None
        before that speed is known); the fewer of the two."""
        expected = [self.total_steps] if self.total_steps else []
        session = self._session
        if self.limits.max_time and session is not None and session.settled is not None:
            since, settled_step = session.settled
            if self.step > settled_step:
                speed = (self.step - settled_step) / max(time.perf_counter() - since, 1e-9)
                expected.append(self.step + speed * max(self.limits.max_time - self.elapsed(), 0.0))
        return min(expected) if expected else None

    def speed_and_eta(self) -> tuple[float, float | None]:
        """Examples per second of this session's wall clock, and the seconds left (None: unknown)."""
        session = self._session or _Session()
        steps = self.step - session.first_step
        seconds = max(time.perf_counter() - session.start, 1e-9)
        estimates = []
        if self.limits.max_time:
            estimates.append(self.limits.max_time - self.elapsed())
        if self.total_steps and steps:
            estimates.append((self.total_steps - self.step) * seconds / steps)
        return steps * self.task.examples_per_step / seconds, min(estimates) if estimates else None

    def request_stop(self, signal_number: int = signal.SIGINT) -> None:
        """Ask the run to save and stop after the current step, as SIGINT or SIGTERM would."""
        self._stop_request = signal_number

    def _emit(self, name: str, *arguments) -> None:
        for callback in self.callbacks:
            getattr(callback, name)(self, *arguments)

    # -- one step --------------------------------------------------------------------------------
    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def train_step(self, batch, learning_rate: float,
                   flags: Callable[[], Sequence[float]] = tuple) -> tuple[float, list[float]]:
        """One optimizer step on ``batch``; returns the loss and ``flags()`` averaged over the
        processes, so that every process takes the same decisions. ``flags`` is read after the
        backward pass, so a signal that arrives during the step is seen at its end.

        Raises :class:`Diverged` (without stepping) when the loss or the gradient norm is not
        finite, or the loss passes ``loss_limit``.
        """
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate
        with self._autocast():
            loss = self.task.loss(self.network, batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        shared = torch.tensor([loss.item(), *flags()], dtype=torch.float64)
        if self.context.is_distributed:  # NCCL exchanges GPU tensors only
            shared = distributed.all_reduce_mean(shared.to(self.device), self.context).cpu()
        shared = shared.tolist()
        mean_loss = shared[0]
        if not math.isfinite(mean_loss):
            raise Diverged(f"the training loss is {mean_loss:.4g}")
        if self.loss_limit is not None:
            # The first loss is the starting model's, which no update of this run caused: a tied
            # 384-wide embedding with a forget bias of 2 starts tinyshakespeare at 13.4 nats, above
            # 3 x ln 65 = 12.5.
            # So the limit grows with it instead of stopping a sound run at its first step.
            if self._loss_ceiling is None:
                self._loss_ceiling = max(self.loss_limit, EXPLODING_FACTOR * mean_loss)
            if mean_loss > self._loss_ceiling:
                raise Diverged(f"the training loss is {mean_loss:.4g}, above {self._loss_ceiling:.3g} "
                               f"({EXPLODING_FACTOR:g} x a uniform guess or x the first step's loss, "
                               f"whichever is higher)")
        self.scaler.unscale_(self.optimizer)
        if self.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            if not self.scaler.is_enabled() and not bool(torch.isfinite(norm)):
                raise Diverged(f"the gradient norm is {float(norm):.4g}")
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.average is not None:
            self.average.update_parameters(self.model)
        return mean_loss, shared[1:]

    # -- driving -------------------------------------------------------------------------------
    def _start(self) -> None:
        if self._session is None:
            self._session = _Session(first_step=self.step)
            self.model.train()
            self._emit("on_start")

    def _finished_reason(self) -> str | None:
        if self.total_steps is not None and self.step >= self.total_steps:
            limits = self.limits
            if limits.max_steps is not None and self.step >= limits.max_steps:
                return "max_steps"
            return "epochs" if limits.epochs is not None else "max_steps"
        return None

    def _requests(self) -> list[float]:
        """This process's wishes after a step: [SIGINT?, SIGTERM?, out of time?]."""
        request = (self._signals.received if self._signals else None) or self._stop_request
        time_up = self.limits.max_time is not None and self.elapsed() >= self.limits.max_time
        return [float(request == signal.SIGINT), float(request == signal.SIGTERM), float(time_up)]

    @staticmethod
    def _requested_stop(requests: Sequence[float]) -> str | None:
        """The stop that any process asked for (``requests`` averaged over the processes)."""
        interrupted, terminated, timed_out = (value > 0 for value in requests)
        if interrupted or terminated:
            return "interrupted" if interrupted else "terminated"
        return "max_time" if timed_out else None

    def advance(self, steps: int = 1) -> list[StepEvent]:
        """Take up to ``steps`` optimizer steps; returns a :class:`StepEvent` for each one taken.

        Fewer are taken when the run stops (a limit, a stop request, divergence):
        :attr:`stop_reason` then says why, and :meth:`finish` ends the run.
        """
        self._start()
        events = []
        while len(events) < steps and self.stop_reason is None:
            self.stop_reason = self._finished_reason()
            if self.stop_reason is not None:
                break
            epoch = self.task.epoch
            batch = self.task.next_batch()
            rate = self.schedule.rate(self.step, self.progress_fraction(), self.run_steps())
            try:
                loss, requests = self.train_step(batch, rate, self._requests)
            except Diverged as error:
                self.stop_reason, self.stop_detail = "diverged", str(error)
                break
            self.state.step += 1
            if self._session.settled is None:
                self._session.settled = (time.perf_counter(), self.step)
            total, count = self.state.window
            self.state.window = (total + loss, count + 1)
            self.stop_reason = self._requested_stop(requests) or self._finished_reason()
            events.append(self._after_step(StepEvent(self.step, self.task.epoch, loss, rate,
                                                     epoch_ended=self.task.epoch != epoch)))
        return events

    def _after_step(self, event: StepEvent) -> StepEvent:
        """Log, evaluate and save as the limits ask; tell the subscribers."""
        limits = self.limits
        finished = self.stop_reason is not None and EXIT_CODES[self.stop_reason] == 0
        can_evaluate = hasattr(self.task, "evaluate") and limits.eval_every is not None
        evaluate_now = can_evaluate and (self.step % limits.eval_every == 0 or finished)
        if evaluate_now or (limits.log_every and self.step % limits.log_every == 0):
            event.record = self._flush_window(event.learning_rate)
        improved = False
        if evaluate_now:
            val_loss = self.task.evaluate(self.evaluated_model)
            state = self.state
            improved = state.best_val_loss is None or val_loss < state.best_val_loss
            state.last_val_loss, state.evaluated_step = val_loss, self.step
            if improved:
                state.best_val_loss, state.best_step, state.evaluations_since_best = val_loss, self.step, 0
            else:
                state.evaluations_since_best += 1
                if limits.patience and state.evaluations_since_best >= limits.patience and self.stop_reason is None:
                    self.stop_reason = "early_stop"
            event.record.update(val_loss=val_loss, val_bits_per_character=val_loss / math.log(2))
            self._emit("on_evaluation", EvaluationEvent(self.step, val_loss, improved))
        # Subscribers write the metrics line before the checkpoint is saved: a run killed in
        # between resumes from the checkpoint before, which drops the line and logs it again.
        self._emit("on_step", event)
        if evaluate_now and self.checkpointer is not None:
            self.save(("latest", "best") if improved else ("latest",))
        return event

    def _flush_window(self, learning_rate: float) -> dict:
        """The metrics line for the steps since the last one."""
        total, count = self.state.window
        self.state.window = (0.0, 0)
        # The rate over the wall clock since the last line, evaluations and saves included: what
        # the person waiting sees, not the training steps' rate alone.
        now = time.perf_counter()
        seconds, self._session.window_start = max(now - self._session.window_start, 1e-9), now
        self.last_train_loss = total / count if count else None
        return {"step": self.step, "epoch": self.task.epoch, "train_loss": self.last_train_loss,
                "learning_rate": learning_rate,
                "characters_per_second": count * self.task.examples_per_step / seconds, "elapsed": self.elapsed(),
                "threads": torch.get_num_threads()}

    def save(self, kinds: Sequence[str] = ("latest",)) -> Path | None:
        """Save a checkpoint of each kind through the checkpointer (every process must call it)."""
        folder = self.checkpointer.save(self, tuple(kinds))
        self._emit("on_checkpoint", CheckpointEvent(self.step, tuple(kinds), folder))
        return folder

    def run(self) -> TrainResult:
        """Train until a limit, a signal (SIGINT, SIGTERM: save and stop) or divergence; then finish."""
        with _StopSignals() as signals:
            self._signals = signals
            try:
                while self.stop_reason is None:
                    self.advance(1)
            finally:
                self._signals = None
        return self.finish()

    def finish(self) -> TrainResult:
        """End the run: save on a stop request, tell the subscribers, and say how it ended."""
        self._start()
        reason = self.stop_reason or self._finished_reason() or "interrupted"
        self.stop_reason = reason
        elapsed = self.elapsed()
        if reason in ("interrupted", "terminated") and self.checkpointer is not None:
            self.save(("latest",))
        latest, best = self.checkpointer.existing() if self.checkpointer is not None else (None, None)
        speed = self.speed_and_eta()[0]
        where = f"; run in {self.run_dir}" if self.run_dir is not None else ""
        if reason == "diverged":
            kept = f"the last good checkpoint is {latest}" if latest else "no checkpoint was saved before"
            message = f"training stopped at step {self.step + 1}: {self.stop_detail}; {kept}"
        elif reason in ("interrupted", "terminated"):
            name = "SIGINT" if reason == "interrupted" else "SIGTERM"
            saved = f"; checkpoint saved to {latest}; continue with --resume" if latest else ""
            message = f"{name}: stopped at step {self.step}{saved}"
        else:
            state = self.state
            val = f", validation loss {state.last_val_loss:.4f}" if state.last_val_loss is not None else ""
            best_text = f", best {state.best_val_loss:.4f}" if state.best_val_loss is not None else ""
            if reason == "early_stop":
                message = (f"stopped early at step {self.step} ({clock(elapsed)}): the validation loss has not "
                           f"improved for {state.evaluations_since_best} evaluations{val}, best "
                           f"{state.best_val_loss:.4f} at step {state.best_step}{where}")
            else:
                limit = {"max_steps": f"{self.step} steps", "epochs": f"{self.limits.epochs} epoch(s)",
                         "max_time": f"{self.limits.max_time} s"}[reason]
                message = f"finished after {limit} ({clock(elapsed)}){val}{best_text}{where}"
        result = TrainResult(run_dir=self.run_dir, stop_reason=reason, message=message, step=self.step,
                             train_loss=self.last_train_loss, val_loss=self.state.last_val_loss,
                             best_val_loss=self.state.best_val_loss, latest_checkpoint=latest,
                             best_checkpoint=best, elapsed=elapsed, characters_per_second=speed,
                             is_main=self.context.is_main)
        self._emit("on_stop", result)
        return result


class FunctionCallback(Callback):
    """``function(trainer)`` after every step: the ``callback=`` of :func:`~charrnn.training.train`."""

    def __init__(self, function: Callable[[Trainer], None]):
        self.function = function

    def on_step(self, trainer: Trainer, event: StepEvent) -> None:
        self.function(trainer)
