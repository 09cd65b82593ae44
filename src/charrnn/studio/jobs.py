"""Lecture training jobs: one of the lecture's examples trained in a thread of its own.

A job drives :class:`charrnn.lecture.LectureTraining`, the very object ``charrnn lecture``
runs, so a job with the lecture's seed and settings gives the lecture's numbers, iteration
for iteration. The web requests never train: they queue a command (Play, Pause, Step, Reset)
and the job's thread carries it out, publishing a :meth:`LectureJob.snapshot` after each
slice of work. At most one job per example lives at a time (:class:`LectureJobs`): starting
a new one stops the old.

Playing trains in slices of about :data:`PLAY_SLICE_SECONDS` and publishes after each, as
TensorFlow Playground's timer does one step per tick: the page never waits for training.
"""

from __future__ import annotations

import concurrent.futures
import math
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass

import torch

from charrnn.cells import MultiRNNCell
from charrnn.checks import check_choice, check_integer
from charrnn.errors import SettingError
from charrnn.lecture import TRAINING_EXAMPLES, LectureSettings, LectureTraining
from charrnn.studio.examples import charrnn_code, resolved_settings
from charrnn.studio.limits import StudioLimits
from charrnn.unroll import dynamic_rnn

#: Seconds of training between two snapshots while playing.
PLAY_SLICE_SECONDS = 0.04
#: Guesses shown per position.
TOP_GUESSES = 5


@dataclass(frozen=True)
class JobRequest:
    """A command for a job's thread; ``future`` is resolved with the snapshot after it."""

    action: str  # "step" or "reset"
    count: int
    future: concurrent.futures.Future


class LectureJob:
    """One training example, trained in its own thread.

    Parameters
    ----------
    name : str
        A key of :data:`charrnn.lecture.TRAINING_EXAMPLES`.
    settings : LectureSettings
    iterations : int
        Where Play stops (the lecture's count by default).
    """

    def __init__(self, name: str, settings: LectureSettings, iterations: int):
        self.id = secrets.token_urlsafe(9)
        self.name = name
        self.example = TRAINING_EXAMPLES[name]()
        self.settings = resolved_settings(self.example, settings)
        self.iterations = iterations
        # Built here, on the caller's thread, so that a bad setting is the request's error.
        self._training = LectureTraining.for_example(self.example, self.settings)
        self.code = charrnn_code(name, self.settings, iterations)
        # (generation, one loss per iteration taken), replaced whole by a reset, so that a reader
        # never pairs one generation with another's losses.
        self.loss_log: tuple[int, list[float]] = (0, [])
        self.version = 0  # bumped by each change the page should see
        self.playing = False
        self.stopped = False
        self.error: str | None = None
        self._requests: deque[JobRequest] = deque()
        self._condition = threading.Condition()
        self._snapshot = self._make_snapshot()
        self._thread = threading.Thread(target=self._work, name=f"charrnn-studio-{name}", daemon=True)
        self._thread.start()

    # -- commands (any thread) -----------------------------------------------------------------
    def play(self) -> None:
        """Train until the iteration count is reached or :meth:`pause`."""
        with self._condition:
            self.playing = self._training.iteration < self.iterations
            self.version += 1
            self._condition.notify_all()

    def pause(self) -> None:
        """Stop after the current slice."""
        with self._condition:
            self.playing = False
            self.version += 1
            self._condition.notify_all()

    def step(self, count: int = 1) -> concurrent.futures.Future:
        """Queue ``count`` iterations; the future gives the snapshot after them."""
        return self._queue("step", count)

    def reset(self) -> concurrent.futures.Future:
        """Queue a fresh model from the seed (iteration 0, paused); the future gives its snapshot."""
        return self._queue("reset", 0)

    def stop(self, wait: float = 5.0) -> None:
        """End the job's thread (after the iteration it is in) and fail what was still queued."""
        with self._condition:
            self.stopped = True
            self.playing = False
            self._condition.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(wait)

    def _queue(self, action: str, count: int) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._condition:
            if self.stopped:
                future.set_exception(SettingError("this job was stopped; start the example again"))
                return future
            self._requests.append(JobRequest(action, count, future))
            self._condition.notify_all()
        return future

    # -- what the page sees --------------------------------------------------------------------
    def snapshot(self) -> dict:
        """The latest published state, with whether the job plays now (a new dict each time)."""
        return dict(self._snapshot, playing=self.playing, stopped=self.stopped)

    # -- the job's thread ----------------------------------------------------------------------
    def _work(self) -> None:
        request = None
        try:
            while True:
                with self._condition:
                    while not self.stopped and not self._requests and not self.playing:
                        self._condition.wait()
                    if self.stopped:
                        break
                    request = self._requests.popleft() if self._requests else None
                if request is None:
                    self._play_slice()
                    continue
                if not request.future.set_running_or_notify_cancel():
                    continue  # the request was given up (its client left, or it timed out)
                if request.action == "reset":
                    self._reset()
                else:
                    self._advance(request.count)
                self._publish()
                request.future.set_result(self.snapshot())
        except Exception as error:  # noqa: BLE001 - a job that fails says why on the page
            self.error = f"{type(error).__name__}: {error}"
            self.playing = False
            self._snapshot = dict(self._snapshot, error=self.error)
        finally:
            with self._condition:
                self.stopped = True
                self.version += 1
                pending, self._requests = list(self._requests), deque()
            for waiting in pending:
                if waiting.future.set_running_or_notify_cancel():
                    waiting.future.set_exception(SettingError("this job was stopped; start the example again"))
            if request is not None and request.future.running():
                # The request being served when the job failed or stopped.
                request.future.set_exception(SettingError(self.error or "this job was stopped"))

    def _advance(self, count: int) -> None:
        for _ in range(min(count, self.iterations - self._training.iteration)):
            loss = float(self._training.step())
            self.loss_log[1].append(loss)
            if not math.isfinite(loss):
                raise FloatingPointError(f"the loss is {loss} at iteration {self._training.iteration - 1}; "
                                         "try a smaller learning rate")

    def _play_slice(self) -> None:
        end = time.monotonic() + PLAY_SLICE_SECONDS
        while True:
            self._advance(1)
            if self._training.iteration >= self.iterations or time.monotonic() >= end:
                break
        with self._condition:
            if self._training.iteration >= self.iterations:
                self.playing = False
        self._publish()

    def _reset(self) -> None:
        self._training = LectureTraining.for_example(self.example, self.settings)
        self.loss_log = (self.loss_log[0] + 1, [])
        with self._condition:
            self.playing = False

    def _publish(self) -> None:
        self._snapshot = self._make_snapshot()
        with self._condition:
            self.version += 1

    @torch.no_grad()
    def _layer_outputs(self, top: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's outputs ``(B, T, H)``, bottom first; ``top`` (the model's) is the last.

        A stack's lower layers are unrolled one after the other for the picture only (the
        lecture's stack has no dropout, so they are what the stack computes inside).
        """
        cell = self._training.model.cell
        if not isinstance(cell, MultiRNNCell):
            return [top]
        layers, outputs = [], self._training.x_one_hot  # (B, T, C)
        for layer in list(cell.cells)[:-1]:
            outputs, _ = dynamic_rnn(layer, outputs)  # (B, T, H)
            layers.append(outputs)
        return [*layers, top]

    def _make_snapshot(self) -> dict:
        """Per position the input, the target, the prediction and its top guesses; the hidden
        state of each step; the iteration and the last loss."""
        training, example = self._training, self.example
        generation, losses = self.loss_log
        hidden, logits = training.outputs()  # (B, T, H), (B, T, C)
        probabilities = torch.softmax(logits, dim=-1)  # (B, T, C)
        top = torch.topk(probabilities, min(TOP_GUESSES, example.num_classes), dim=-1)  # (B, T, K)
        prediction = logits.argmax(dim=2)  # (B, T)
        characters = example.characters
        positions = []
        for row, t in example.positions():
            positions.append({
                "input": characters[int(example.inputs[row, t])],
                "target": characters[int(example.targets[row, t])],
                "prediction": characters[int(prediction[row, t])],
                "guesses": [[characters[int(index)], round(float(p), 4)]
                            for index, p in zip(top.indices[row, t], top.values[row, t])],
            })
        hidden_layers = [[[round(float(value), 4) for value in layer[row, t]] for row, t in example.positions()]
                         for layer in self._layer_outputs(hidden)]
        return {
            "job": self.id, "example": self.name, "iteration": training.iteration, "iterations": self.iterations,
            "playing": self.playing, "done": training.iteration >= self.iterations, "error": self.error,
            "loss": losses[-1] if losses else None, "generation": generation,
            "prediction": example.read(prediction), "target": example.read(example.targets),
            "positions": positions, "hidden": hidden_layers,  # (layers, positions, H), bottom first
            "hidden_size": int(hidden.shape[-1]),
            "settings": {"seed": self.settings.seed, "cell": self.settings.cell,
                         "hidden_size": self.settings.hidden_size, "learning_rate": self.settings.learning_rate,
                         "optimizer": self.settings.optimizer, "dense": self.settings.dense},
        }


class LectureJobs:
    """The studio's lecture jobs: at most one per example, starting a new one stops the old."""

    def __init__(self, limits: StudioLimits):
        self.limits = limits
        self._jobs: dict[str, LectureJob] = {}  # example name -> its job
        self._lock = threading.Lock()

    def start(self, name: str, settings: LectureSettings, iterations: int | None = None) -> LectureJob:
        """A new job for example ``name`` (replacing its old one), after checking the settings against the limits."""
        name = check_choice("example", name, list(TRAINING_EXAMPLES))
        example = TRAINING_EXAMPLES[name]()
        iterations = check_integer("iterations", example.iterations if iterations is None else iterations,
                                   maximum=self.limits.max_iterations)
        if settings.hidden_size is not None:
            check_integer("hidden_size", settings.hidden_size, maximum=self.limits.max_hidden_size)
        job = LectureJob(name, settings, iterations)
        with self._lock:
            old = self._jobs.pop(name, None)
            if old is None and len(self._jobs) >= self.limits.max_jobs:
                job.stop()
                raise SettingError(f"{len(self._jobs)} lecture jobs are running, the most there may be")
            self._jobs[name] = job
        if old is not None:
            old.stop()
        return job

    def get(self, job_id: str) -> LectureJob | None:
        """The live job with id ``job_id``, or None."""
        with self._lock:
            return next((job for job in self._jobs.values() if job.id == job_id), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)

    def stop_all(self) -> None:
        """Stop every job (the server is going away)."""
        with self._lock:
            jobs, self._jobs = list(self._jobs.values()), {}
        for job in jobs:
            job.stop()
