"""What a training run reports: ``metrics.jsonl``, the progress bar, the loss curve and samples.

:class:`MetricsCallback`, :class:`ProgressCallback` and :class:`SampleCallback` subscribe to a
:class:`~charrnn.training.loop.Trainer`'s events like any other subscriber.
"""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path
from typing import Sequence

from charrnn.errors import SettingError
from charrnn.files import append_text, atomic_write
from charrnn.training.events import Callback

#: A run directory's metrics log, loss curve and samples taken while training.
METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"
SAMPLES_FILE = "samples.jsonl"


# -- the run directory's logs ------------------------------------------------------------------
class MetricsLog:
    """A run's log of one JSON object per line with its ``step`` (``metrics.jsonl``,
    ``samples.jsonl``), appended as training goes."""

    def __init__(self, path: Path):
        self.path = path

    def append(self, record: dict) -> None:
        """Add one line (flushed at once, so a crash loses at most the line being written)."""
        append_text(self.path, json.dumps(record) + "\n")

    def read(self) -> list[dict]:
        """Every whole line (a line cut short by a crash is skipped)."""
        records = []
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return records
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int):
                records.append(record)
        return records

    def truncate_after(self, step: int) -> None:
        """Drop lines past ``step``: a resumed run logs those steps again."""
        if not self.path.exists():
            return
        kept = [record for record in self.read() if record["step"] <= step]
        atomic_write(self.path, "".join(json.dumps(record) + "\n" for record in kept))


def plot_losses(records: Sequence[dict], path: Path) -> Path | None:
    """Draw training and validation loss against steps into a PNG at ``path`` (atomically).

    Uses matplotlib's Agg canvas directly, so no global backend is switched. Returns None
    when there is nothing to draw.
    """
    train = [(r["step"], r["train_loss"]) for r in records if r.get("train_loss") is not None]
    val = [(r["step"], r["val_loss"]) for r in records if r.get("val_loss") is not None]
    if not train and not val:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if train:
        axes.plot(*zip(*train), label="train", linewidth=1.2)
    if val:
        axes.plot(*zip(*val), label="validation", marker="o", markersize=3, linewidth=1.5)
    axes.set_xlabel("step")
    axes.set_ylabel("loss (nats per character)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write(path, buffer.getvalue())


# -- progress on the terminal ------------------------------------------------------------------
def clock(seconds: float) -> str:
    """``seconds`` as ``m:ss``, or ``h:mm:ss`` from an hour up."""
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """A tqdm bar on a terminal, plain log lines elsewhere, nothing when ``enabled`` is False.

    ``bar=None`` picks the bar when stderr is a terminal.
    """

    def __init__(self, total_steps: int | None, initial_step: int, enabled: bool = True, bar: bool | None = None,
                 stream=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.bar = None
        if enabled and (bar if bar is not None else self.stream.isatty()):
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, initial=initial_step, unit="step", file=self.stream,
                            dynamic_ncols=True, leave=True)

    def step(self, loss: float, characters_per_second: float, eta: float | None) -> None:
        """After every step: move the bar."""
        if self.bar is not None:
            postfix = f"loss {loss:.4f}, {characters_per_second:,.0f} chars/s"
            if eta is not None:
                postfix += f", ETA {clock(eta)}"
            self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.update(1)

    def log(self, line: str) -> None:
        """A log line (a step summary, an evaluation, a note)."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        """Finish the bar."""
        if self.bar is not None:
            self.bar.close()


# -- subscribers of a trainer's events ---------------------------------------------------------
class MetricsCallback(Callback):
    """Appends each metrics line to ``metrics.jsonl`` and draws ``loss.png`` when the run ends."""

    def __init__(self, run_dir: Path):
        self.log = MetricsLog(Path(run_dir) / METRICS_FILE)
        self.plot = Path(run_dir) / PLOT_FILE

    def on_step(self, trainer, event) -> None:
        if event.record is not None:
            self.log.append(event.record)

    def on_stop(self, trainer, result) -> None:
        try:
            plot_losses(self.log.read(), self.plot)
        except OSError as error:  # the run itself is saved; a missing picture is not worth failing it
            print(f"charrnn: warning: could not write {self.plot} ({error.strerror})", file=sys.stderr)


class ProgressCallback(Callback):
    """The progress bar (or plain lines when stderr is not a terminal) of a run."""

    def __init__(self, enabled: bool = True, bar: bool | None = None, stream=None):
        self.enabled, self.bar, self.stream = enabled, bar, stream
        self.progress: Progress | None = None

    def on_start(self, trainer) -> None:
        self.progress = Progress(trainer.total_steps, trainer.step, enabled=self.enabled, bar=self.bar,
                                 stream=self.stream)
        for line in trainer.notes:
            self.progress.log(line)

    def say(self, line: str) -> None:
        """A line of another subscriber's, printed without breaking the bar."""
        if self.progress is not None:
            self.progress.log(line)

    def on_step(self, trainer, event) -> None:
        speed, eta = trainer.speed_and_eta()
        self.progress.step(event.loss, speed, eta)
        if event.record is not None:
            self.progress.log(self.line(trainer, event.record, eta))

    def on_stop(self, trainer, result) -> None:
        if self.progress is not None:
            self.progress.close()

    @staticmethod
    def line(trainer, record: dict, eta: float | None) -> str:
        """A metrics line as people read it: ``step 50/1000 | loss 2.1 | val 2.2 | lr ... | ...``."""
        total = f"/{trainer.total_steps}" if trainer.total_steps else ""
        parts = [f"step {record['step']}{total}"]
        if record.get("train_loss") is not None:
            parts.append(f"loss {record['train_loss']:.4f}")
        if record.get("val_loss") is not None:
            parts.append(f"val {record['val_loss']:.4f}")
        parts += [f"lr {record['learning_rate']:.2e}", f"{record['characters_per_second']:,.0f} chars/s",
                  f"{clock(record['elapsed'])} elapsed"]
        if eta is not None:
            parts.append(f"ETA {clock(eta)}")
        return " | ".join(parts)


class SampleCallback(Callback):
    """Every ``settings.sample_every`` steps, a short sample: said, and appended to ``samples.jsonl``.

    ``sample_length`` characters after ``sample_prime`` at ``sample_temperature``, drawn in
    evaluation mode (no dropout) from a generator of its own, seeded by the run's seed and the
    step: watching a run never changes what it computes, and a resumed run draws the same samples.
    """

    def __init__(self, run_dir: Path, vocabulary, settings, say=None):
        unknown = vocabulary.unknown_characters(settings.sample_prime)
        if unknown:
            raise SettingError(f"--sample-prime holds characters the corpus lacks: "
                               f"{', '.join(repr(char) for char in unknown)}")
        self.vocabulary, self.settings = vocabulary, settings
        self.log = MetricsLog(Path(run_dir) / SAMPLES_FILE)
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))

    def on_step(self, trainer, event) -> None:
        if event.step % self.settings.sample_every:
            return
        from charrnn.sampling import make_generator, sample_text

        settings, model = self.settings, trainer.evaluated_model
        generator = make_generator(settings.seed * 1_000_003 + event.step, model.head.weight.device)
        was_training = model.training
        model.eval()
        try:
            text = sample_text(model, self.vocabulary, prime=settings.sample_prime, length=settings.sample_length,
                               temperature=settings.sample_temperature, generator=generator)
        finally:
            model.train(was_training)
        evaluated = trainer.state.evaluated_step == event.step
        self.log.append({"step": event.step, "val_loss": trainer.state.last_val_loss if evaluated else None,
                         "prime": settings.sample_prime, "temperature": settings.sample_temperature, "text": text})
        self.say(f"--- sample at step {event.step} (temperature {settings.sample_temperature:g}) ---\n"
                 f"{settings.sample_prime}{text}\n---")


class ShortRunWarning(Callback):
    """Says when a run is too short to learn, rather than letting it end silently with nothing learned.

    A run limited by time is judged after its first :attr:`CHECK_AT` steps (or :attr:`CHECK_SHARE`
    of its time, if that comes first): at the speed so far,
    fewer than :attr:`MIN_STEPS` steps in all is a warning. Any run whose last validation loss is
    above :attr:`UNIFORM_SHARE` of a uniform guess's (ln V nats) ends with one: it has not even
    learned how often each character occurs.
    """

    CHECK_AT, CHECK_SHARE, MIN_STEPS, UNIFORM_SHARE = 10, 0.1, 100, 0.95

    def __init__(self, vocab_size: int, say):
        self.uniform, self.vocab_size, self.say = math.log(vocab_size), vocab_size, say
        self.first_step: int | None = None

    def on_start(self, trainer) -> None:
        self.first_step, self.checked = trainer.step, False

    def on_step(self, trainer, event) -> None:
        max_time = trainer.limits.max_time
        if not max_time or self.checked:
            return
        if event.step - self.first_step < self.CHECK_AT and trainer.elapsed() < self.CHECK_SHARE * max_time:
            return
        self.checked = True
        speed, left = trainer.speed_and_eta()
        steps_per_second = speed / trainer.task.examples_per_step
        expected = event.step + int(steps_per_second * max(left or 0.0, 0.0))
        if trainer.total_steps is not None:
            expected = min(expected, trainer.total_steps)
        if expected < self.MIN_STEPS:
            self.say(f"charrnn: warning: at {steps_per_second:.2g} steps/s this run will take about {expected} steps "
                     f"in --max-time {max_time:g}, too few to learn much; give more time, a smaller model "
                     f"(--hidden-size) or more --threads if cores are free")

    def on_stop(self, trainer, result) -> None:
        loss = result.val_loss
        if loss is not None and result.exit_code == 0 and loss > self.UNIFORM_SHARE * self.uniform:
            self.say(f"charrnn: warning: the validation loss {loss:.2f} is hardly below a uniform guess's "
                     f"{self.uniform:.2f} (ln {self.vocab_size}): in {result.step} steps the model learned almost "
                     f"nothing; train longer or at a higher --learning-rate")
