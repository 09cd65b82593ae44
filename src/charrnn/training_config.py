"""Training settings: the :class:`TrainConfig` dataclass, its presets, TOML files and checks.

Settings come from four layers, each overriding the one before: the defaults below, a named
preset (``--preset``), a TOML file (``--config FILE.toml``, keys as the field names) and the
command-line flags. The defaults suit a small corpus on a 2-core CPU.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from charrnn.cells import CELL_TYPES
from charrnn.errors import CharRNNError
from charrnn.model import CharLMConfig

#: When no --max-steps, --epochs or --max-time is given, training stops after this many steps.
DEFAULT_MAX_STEPS = 5000
DEVICES = ("auto", "cpu", "cuda", "mps")
AMP_MODES = ("none", "bf16", "fp16")
DECAYS = ("cosine", "linear", "constant")

#: Named sets of settings. ``cpu-15min`` is the recipe for a tinyshakespeare-sized corpus and a
#: quarter-hour of a 2-core CPU: a wider network, kept from over-fitting by dropout and strong
#: weight decay, at a gentler peak learning rate. In 15 minutes it sees the corpus about ten
#: times. On tinyshakespeare it reaches 1.398-1.400 nats; weight decay 0.3 gave 1.404, 0.1 gave
#: 1.409, 0.05 gave 1.415 (and 1.422 with dropout 0.45), and the former 2x384 with dropout 0.2
#: and no decay 1.452, its training loss 0.3 below.
PRESETS: dict[str, dict] = {
    "default": {},
    "cpu-15min": {"hidden_size": 512, "dropout": 0.35, "weight_decay": 0.2, "learning_rate": 4e-3,
                  "max_time": 900.0},
}

#: Settings a resumed run may change freely (how long, how often, where), as opposed to the
#: ones that define the run.
FREE_ON_RESUME = frozenset({"max_steps", "epochs", "max_time", "eval_every", "eval_characters",
                            "log_every", "device", "amp", "num_threads"})
#: Settings a resumed run can never change: the weights or the data split depend on them.
FIXED_ON_RESUME = frozenset({"cell", "hidden_size", "num_layers", "embedding_size", "val_fraction",
                             "encoding"})


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in the run's ``config.json``).

    Model: ``cell`` ('lstm', 'gru', 'rnn', 'gru-reset-after'), ``hidden_size``, ``num_layers``,
    ``embedding_size``, ``dropout``, ``forget_bias`` (the LSTM's; TensorFlow's cell uses 1.0).
    Data: ``sequence_length`` (steps of truncated back-propagation), ``batch_size`` (parallel
    streams per process), ``val_fraction`` (the last part of the text), ``encoding``.
    Optimisation: Adam at ``learning_rate`` with ``warmup_steps`` of linear warm-up, then a
    ``decay`` ('cosine', 'linear' or 'constant') down to ``min_learning_rate`` (default a tenth
    of ``learning_rate``) at the end of the run; ``weight_decay``; gradients clipped to a
    global norm of ``grad_clip`` (0 turns clipping off).
    Length: ``max_steps``, ``epochs`` and ``max_time`` (seconds of training); the first reached
    stops the run, and with none given it stops after :data:`DEFAULT_MAX_STEPS` steps.
    Evaluation: every ``eval_every`` steps on at most ``eval_characters`` characters of the
    validation split (0: all of it); a log line every ``log_every`` steps.
    Machine: ``seed``, ``device`` ('auto', 'cpu', 'cuda', 'mps'), ``amp`` ('none', 'bf16',
    'fp16'; CUDA only), ``num_threads`` (CPU threads; default: the cores, shared among the
    processes of a distributed run).
    """

    cell: str = "lstm"
    hidden_size: int = 256
    num_layers: int = 2
    embedding_size: int = 64
    dropout: float = 0.0
    # 0.0 rather than TensorFlow's 1.0: over steps 250-300 of the defaults on tinyshakespeare
    # the training loss averages 1.65 nats against 1.79.
    forget_bias: float = 0.0
    sequence_length: int = 64
    batch_size: int = 32
    val_fraction: float = 0.1
    encoding: str = "utf-8"
    # A high peak rate, warmed up and decayed, learns most in a short run: on tinyshakespeare,
    # 1100 steps of the defaults reach a validation loss of 1.51 nats at 1e-2, 1.53 at 6e-3 and
    # 1.59 at 3e-3.
    learning_rate: float = 1e-2
    min_learning_rate: float | None = None
    warmup_steps: int = 100
    decay: str = "cosine"
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    max_steps: int | None = None
    epochs: float | None = None
    max_time: float | None = None
    eval_every: int = 500
    # Covers the whole validation split of a small corpus (tinyshakespeare's last 10% is 111,540
    # characters, and its hardest part is at the very end), and caps the cost on a large one.
    eval_characters: int = 200_000
    log_every: int = 50
    seed: int = 1337
    device: str = "auto"
    amp: str = "none"
    num_threads: int | None = None

    def __post_init__(self):
        self.validate()

    # -- checks ------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`CharRNNError` naming the first setting out of range."""
        _choice("cell", self.cell, sorted(CELL_TYPES))
        for name in ("hidden_size", "num_layers", "embedding_size", "sequence_length", "batch_size",
                     "eval_every", "log_every"):
            _integer(name, getattr(self, name), minimum=1)
        for name in ("warmup_steps", "eval_characters", "seed"):
            _integer(name, getattr(self, name), minimum=0)
        for name in ("max_steps", "num_threads"):
            if getattr(self, name) is not None:
                _integer(name, getattr(self, name), minimum=1)
        _number("dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        _number("forget_bias", self.forget_bias)
        _number("val_fraction", self.val_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
        _number("learning_rate", self.learning_rate, low=0.0, low_open=True)
        if self.min_learning_rate is not None:
            _number("min_learning_rate", self.min_learning_rate, low=0.0, high=self.learning_rate)
        _number("weight_decay", self.weight_decay, low=0.0)
        _number("grad_clip", self.grad_clip, low=0.0)
        for name in ("epochs", "max_time"):
            if getattr(self, name) is not None:
                _number(name, getattr(self, name), low=0.0, low_open=True)
        _choice("decay", self.decay, DECAYS)
        _choice("device", self.device, DEVICES)
        _choice("amp", self.amp, AMP_MODES)
        if not isinstance(self.encoding, str) or not self.encoding:
            raise CharRNNError(f"--encoding must be a codec name such as 'utf-8', got {self.encoding!r}")

    # -- views -------------------------------------------------------------------------------
    def model_config(self, vocab_size: int) -> CharLMConfig:
        """The :class:`CharLMConfig` of this run's model for a vocabulary of ``vocab_size``."""
        return CharLMConfig(vocab_size=vocab_size, cell=self.cell, hidden_size=self.hidden_size,
                            num_layers=self.num_layers, embedding_size=self.embedding_size,
                            dropout=self.dropout, forget_bias=self.forget_bias)

    @property
    def final_learning_rate(self) -> float:
        """The rate the decay ends at."""
        if self.min_learning_rate is not None:
            return self.min_learning_rate
        return self.learning_rate if self.decay == "constant" else self.learning_rate / 10

    def to_dict(self) -> dict:
        """Plain values for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str | None = None) -> "TrainConfig":
        """Build from a dict of field values; errors name ``source`` (e.g. a file) if given."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        prefix = f"{source}: " if source else ""
        if unknown:
            raise CharRNNError(f"{prefix}unknown setting(s) {', '.join(unknown)}; known settings: "
                               f"{', '.join(sorted(known))}")
        try:
            return cls(**values)
        except CharRNNError as error:
            raise CharRNNError(f"{prefix}{error}") from None


def load_toml(path: str | os.PathLike) -> dict:
    """The settings in a TOML file (keys as :class:`TrainConfig` fields, dashes allowed)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            values = tomllib.load(handle)
    except FileNotFoundError:
        raise CharRNNError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise CharRNNError(f"{path}: is a folder, expected a TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise CharRNNError(f"{path}: not valid TOML ({error})") from None
    except OSError as error:
        raise CharRNNError(f"{path}: cannot read ({error.strerror})") from None
    return {key.replace("-", "_"): value for key, value in values.items()}


def build_config(preset: str | None = None, config_file: str | os.PathLike | None = None,
                 overrides: dict | None = None) -> TrainConfig:
    """Defaults, then ``preset``, then ``config_file`` (TOML), then ``overrides`` (flags).

    A ``preset`` key in the file names the preset when the argument does not.
    """
    file_values = load_toml(config_file) if config_file is not None else {}
    preset = preset or file_values.pop("preset", None) or "default"
    file_values.pop("preset", None)
    if preset not in PRESETS:
        raise CharRNNError(f"--preset: unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    TrainConfig.from_dict(file_values, source=str(config_file))  # name the file on a bad value
    values = {**PRESETS[preset], **file_values, **(overrides or {})}
    return TrainConfig.from_dict(values)


def resolve_resume(saved: TrainConfig, requested: dict, allow_changes: bool, source: str) -> TrainConfig:
    """The settings of a resumed run: ``saved`` with the ``requested`` changes that are allowed.

    Stop conditions, evaluation cadence and the machine may change freely. Other changes are
    refused unless ``allow_changes``; the model's shape and the data split never change.
    """
    changes = {name: value for name, value in requested.items() if getattr(saved, name) != value}
    for name, value in sorted(changes.items()):
        if name in FREE_ON_RESUME:
            continue
        where = f"{name}={getattr(saved, name)!r} in {source}"
        flag = _flag(name)
        if name in FIXED_ON_RESUME:
            raise CharRNNError(f"--resume: {flag} {value!r} contradicts the saved run ({where}); the "
                               f"model and data split cannot change, start a new run instead")
        if not allow_changes:
            raise CharRNNError(f"--resume: {flag} {value!r} contradicts the saved run ({where}); pass "
                               f"--override to change it")
    return TrainConfig.from_dict({**saved.to_dict(), **changes})


# -- value checks --------------------------------------------------------------------------------
#: Settings whose command-line flag is not the field's name.
_FLAGS = {"num_threads": "--threads"}


def _flag(name: str) -> str:
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def _choice(name: str, value, choices) -> None:
    if value not in choices:
        raise CharRNNError(f"{_flag(name)} must be one of {', '.join(choices)}, got {value!r}")


def _integer(name: str, value, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise CharRNNError(f"{_flag(name)} must be {expected}, got {value!r}")


def _number(name: str, value, low=None, high=None, low_open=False, high_open=False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise CharRNNError(f"{_flag(name)} must be a number in {interval}, got {value!r}")
