"""Training settings: what a run is, where each setting comes from, and what may change on resume.

Settings come from four layers, each overriding the one before: the defaults below, a named
preset (``--preset``), a TOML file (``--config FILE.toml``, keys as the flags: ``hidden-size``
or ``hidden_size``, ``threads``) and the command-line flags. A resumed run starts from the
settings it saved and takes only the changes it allows. :func:`resolve_settings` is the one
place that turns these into the settings of a run; the command line only parses.

The fields are declared once, in three groups: :class:`~charrnn.model.ModelSettings` (the
model's shape), :class:`OptimizationSettings` (how any charrnn model is optimised, shared with
the classifier) and the language model's own in :class:`TrainConfig`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from charrnn.checks import check_choice, check_integer, check_number, check_optional, flag
from charrnn.devices import check_device_name
from charrnn.errors import SettingError
from charrnn.files import read_bytes
from charrnn.model import CharLMConfig, LanguageModelSettings
from charrnn.training.schedule import DECAYS, Schedule

#: When no --max-steps, --epochs or --max-time is given, training stops after this many steps.
DEFAULT_MAX_STEPS = 5000
#: With no --warmup-steps, the warm-up lasts this many steps, or this fraction of a shorter run:
#: a fixed 100 steps left a 19-step run (--max-time 60 on a busy CPU) at a fifth of its peak rate.
DEFAULT_WARMUP_STEPS, DEFAULT_WARMUP_FRACTION = 100, 0.05
AMP_MODES = ("none", "bf16", "fp16", "auto")

#: Named sets of settings. ``cpu-15min`` is the recipe for a tinyshakespeare-sized corpus and a
#: quarter-hour of a 2-core CPU: a two-layer network, kept from over-fitting by dropout, strong
#: weight decay and an output layer tied to the embedding, at the defaults' high peak learning
#: rate or above, decayed to a hundredth of it. Of the peak rates measured on the former
#: 2 x 512 (4e-3 to 1.7e-2) 1.3e-2 reached the lowest validation loss. Two layers of 384
#: rather than 512: on a shared host the smaller model steps twice as fast (probably its
#: weights staying in cache) and won every paired run. TensorFlow's forget bias of 1.0, which
#: the defaults leave at 0, helps a run this long. Dropout 0.2 averaged 0.002 nats below 0.25;
#: 0.15 did as well but 0.1 over-fitted, so 0.2 keeps a margin. docs/training.md gives every figure
#: (bench/bench_train.py --quality 15min) and the settings that lost.
PRESETS: dict[str, dict] = {
    "default": {},
    "cpu-15min": {"hidden_size": 384, "num_layers": 2, "tie_weights": True, "dropout": 0.2,
                  "weight_decay": 0.2, "learning_rate": 1.3e-2, "forget_bias": 1.0, "max_time": 900.0},
}

#: Settings a resumed run may change freely (how long, how often, where), as opposed to the
#: ones that define the run.
FREE_ON_RESUME = frozenset({"max_steps", "epochs", "max_time", "eval_every", "eval_characters",
                            "log_every", "device", "amp", "num_threads", "early_stop", "keep", "sample_every",
                            "sample_length", "sample_prime", "sample_temperature"})
#: Settings a resumed run can never change: the weights or the data split depend on them.
FIXED_ON_RESUME = frozenset({"cell", "hidden_size", "num_layers", "embedding_size", "val_fraction",
                             "encoding", "init_from", "tie_weights", "documents_per_line", "average_decay"})
#: With no --eval-every, a run is evaluated about this many times (every step budget's tenth),
#: but never more often than every MIN_EVAL_EVERY steps nor less often than every MAX_EVAL_EVERY.
EVALUATIONS_PER_RUN, MIN_EVAL_EVERY, MAX_EVAL_EVERY = 10, 25, 500


@dataclass(kw_only=True)
class OptimizationSettings:
    """How a charrnn model is optimised, for the language model and the classifier alike.

    Adam (AdamW when ``weight_decay`` is above 0) at ``learning_rate`` with ``warmup_steps`` of
    linear warm-up (default: :data:`DEFAULT_WARMUP_STEPS`, or the first
    :data:`DEFAULT_WARMUP_FRACTION` of a shorter run), then a ``decay`` ('cosine', 'linear' or 'constant') down to
    ``min_learning_rate`` (default :attr:`final_rate_fraction` of ``learning_rate``: a tenth
    here, a hundredth for the language model) at the end of the run;
    gradients clipped to a global norm of ``grad_clip`` (0 turns clipping off); ``batch_size``
    examples (streams, texts) per step; ``seed``; ``device`` ('auto', 'cpu', 'cuda', 'cuda:N',
    'mps'); ``amp`` ('none'; 'bf16' on CUDA or a CPU; 'fp16' on CUDA; 'auto': bf16 on a CPU
    with bfloat16 instructions, else none: :func:`charrnn.devices.resolve_amp`); ``num_threads``
    (CPU threads).
    """

    #: ``min_learning_rate``'s default, as a fraction of ``learning_rate``.
    final_rate_fraction: ClassVar[float] = 0.1
    batch_size: int = 32
    # A high peak rate, warmed up and decayed, learns most in a short run: on tinyshakespeare,
    # 1100 steps of the defaults reach a validation loss of 1.51 nats at 1e-2, 1.53 at 6e-3 and
    # 1.59 at 3e-3.
    learning_rate: float = 1e-2
    min_learning_rate: float | None = None
    warmup_steps: int | None = None
    decay: str = "cosine"
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 1337
    device: str = "auto"
    amp: str = "none"
    num_threads: int | None = None

    def __post_init__(self):
        self.check_optimization_settings()

    def check_optimization_settings(self) -> None:
        """Raise :class:`~charrnn.errors.SettingError` naming the first setting out of range."""
        check_integer("batch_size", self.batch_size)
        check_optional(check_integer, "warmup_steps", self.warmup_steps, minimum=0)
        check_integer("seed", self.seed, minimum=0)
        check_optional(check_integer, "num_threads", self.num_threads)
        check_number("learning_rate", self.learning_rate, low=0.0, low_open=True)
        check_optional(check_number, "min_learning_rate", self.min_learning_rate, low=0.0, high=self.learning_rate)
        check_number("weight_decay", self.weight_decay, low=0.0)
        check_number("grad_clip", self.grad_clip, low=0.0)
        check_choice("decay", self.decay, DECAYS)
        check_device_name(self.device)
        check_choice("amp", self.amp, AMP_MODES)

    @property
    def schedule(self) -> Schedule:
        """The learning-rate schedule these settings describe."""
        final = self.min_learning_rate
        if final is None:
            final = self.learning_rate if self.decay == "constant" else self.learning_rate * self.final_rate_fraction
        if self.warmup_steps is None:
            return Schedule(self.learning_rate, final, DEFAULT_WARMUP_STEPS, self.decay, DEFAULT_WARMUP_FRACTION)
        return Schedule(self.learning_rate, final, self.warmup_steps, self.decay)


@dataclass(kw_only=True)
class TrainConfig(LanguageModelSettings, OptimizationSettings):
    """Everything that defines a language-model training run (saved in the run's ``config.json``).

    The model's shape and regularisers (:class:`~charrnn.model.LanguageModelSettings`) and its
    optimisation (:class:`OptimizationSettings`), and:
    Data: ``sequence_length`` (steps of truncated back-propagation), ``val_fraction`` (the
    last part of the text), ``encoding``; ``batch_size`` counts parallel streams per process.
    ``documents_per_line``: each line is its own sequence, from a fresh state
    (:mod:`charrnn.training.documents`); ``batch_size`` then counts documents.
    Length: ``max_steps``, ``epochs`` and ``max_time`` (seconds of training); the first reached
    stops the run, and with none given it stops after :data:`DEFAULT_MAX_STEPS` steps.
    Evaluation: every ``eval_every`` steps (default: :func:`default_eval_every`) on at most
    ``eval_characters`` characters of the validation split (0: all of it); a log line every
    ``log_every`` steps. ``early_stop``: stop when that many evaluations in a row have not
    improved on the best validation loss. ``keep``: besides ``best`` and ``latest``, keep the
    last ``keep`` evaluated checkpoints as ``checkpoints/step-<step>-loss-<val>``.
    Watching: every ``sample_every`` steps, a ``sample_length``-character sample from
    ``sample_prime`` at ``sample_temperature`` is printed and appended to ``samples.jsonl``.
    Fine-tuning: ``init_from`` (a checkpoint, run folder or pretrained name) gives the model's
    shape and starting weights; its vocabulary is extended by the corpus's new characters.
    Weight averaging: with ``average_decay`` above 0, the run's model is an exponential moving
    average of the weights, that decay a step (see :class:`~charrnn.training.loop.Trainer`):
    what is evaluated, sampled and saved.
    """

    # Regularised and decayed further than the classifier: in 120 s of bf16 training on
    # tinyshakespeare (2 threads, load 1-2), dropout 0.1 with weight decay 0.1 and a decay to a
    # hundredth reached 1.453 and 1.464 nats, with weight decay 0.2 1.456; without them 1.470
    # (a hundredth), 1.462 and 1.472 (a tenth, the former default); dropout 0.1 alone 1.466,
    # 0.2 1.493 (each a 120-s charrnn.training.train scored as bench/bench_train.py --quality 2min does).
    final_rate_fraction: ClassVar[float] = 0.01
    dropout: float = 0.1
    weight_decay: float = 0.1
    # bfloat16 on a CPU that has the instructions: in 120 s on tinyshakespeare it made 1.5-1.6 x
    # the characters per second of float32 and reached 1.489 and 1.487 nats against 1.518 and
    # 1.538 (bench/bench_train.py --quality 2min --amp none bf16, two runs).
    amp: str = "auto"
    # Off by default: it does what the last, slow part of a decay does. On the 15-minute preset
    # decayed to a tenth, 0.998 took 0.0096 nats off the same run's weights (0.995: 0.0072);
    # decayed to a hundredth, as the preset is now, nothing (see cpu-15min).
    average_decay: float = 0.0
    sequence_length: int = 64
    documents_per_line: bool = False
    val_fraction: float = 0.1
    encoding: str = "utf-8"
    max_steps: int | None = None
    epochs: float | None = None
    max_time: float | None = None
    eval_every: int | None = None
    # Covers the whole validation split of a small corpus (tinyshakespeare's last 10% is 111,540
    # characters, and its hardest part is at the very end), and caps the cost on a large one.
    eval_characters: int = 200_000
    log_every: int = 50
    early_stop: int | None = None
    keep: int = 0
    sample_every: int | None = None
    sample_length: int = 200
    sample_prime: str = ""
    sample_temperature: float = 0.8
    init_from: str | None = None

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise :class:`~charrnn.errors.SettingError` naming the first setting out of range."""
        self.check_model_settings()
        self.check_optimization_settings()
        for name in ("sequence_length", "log_every", "sample_length"):
            check_integer(name, getattr(self, name))
        for name in ("eval_characters", "keep"):
            check_integer(name, getattr(self, name), minimum=0)
        for name in ("max_steps", "eval_every", "early_stop", "sample_every"):
            check_optional(check_integer, name, getattr(self, name))
        check_number("sample_temperature", self.sample_temperature, low=0.0, low_open=True)
        for name in ("sample_prime", "init_from"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise SettingError(f"{flag(name)} must be text, got {value!r}")
        if not isinstance(self.documents_per_line, bool):
            raise SettingError(f"--documents-per-line must be true or false, got {self.documents_per_line!r}")
        if self.init_from == "":
            raise SettingError("--init-from must name a checkpoint, a run folder or a pretrained model")
        check_number("val_fraction", self.val_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
        check_number("average_decay", self.average_decay, low=0.0, high=1.0, high_open=True)
        for name in ("epochs", "max_time"):
            check_optional(check_number, name, getattr(self, name), low=0.0, low_open=True)
        if not isinstance(self.encoding, str) or not self.encoding:
            raise SettingError(f"--encoding must be a codec name such as 'utf-8', got {self.encoding!r}")

    def model_config(self, vocab_size: int) -> CharLMConfig:
        """The :class:`CharLMConfig` of this run's model for a vocabulary of ``vocab_size``."""
        return CharLMConfig(vocab_size=vocab_size, **self.model_settings())


def default_eval_every(total_steps: int | None, steps_per_epoch: int) -> int:
    """How often a run without ``--eval-every`` is evaluated.

    A run of known length: about :data:`EVALUATIONS_PER_RUN` times (a 900-step run every 90
    steps), so that a small corpus's over-fitting shows; a run limited only by time: once an
    epoch. Either way within [:data:`MIN_EVAL_EVERY`, :data:`MAX_EVAL_EVERY`] steps, since each
    evaluation also saves a checkpoint.
    """
    every = -(-total_steps // EVALUATIONS_PER_RUN) if total_steps else steps_per_epoch
    return max(MIN_EVAL_EVERY, min(MAX_EVAL_EVERY, every))


# -- where settings come from --------------------------------------------------------------------
def setting_names(config_class: type = TrainConfig) -> dict[str, str]:
    """Each key a settings file may use (the flag's name, with ``_`` or ``-``) -> the field it sets."""
    names = {}
    for field in fields(config_class):
        spelled = flag(field.name).removeprefix("--")
        for key in {spelled, spelled.replace("-", "_"), field.name}:
            names[key] = field.name
    return names


def load_toml(path: str | os.PathLike) -> dict:
    """The settings in a TOML file, keyed by field; ``preset`` is kept as it is.

    Keys are the flags' names, with ``_`` or ``-`` (``hidden-size``, ``threads``); an unknown
    key, or one setting given twice under two spellings, is an error naming the file.
    """
    path = Path(path)
    data = read_bytes(path, "a TOML file", missing="config file not found")
    try:
        values = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SettingError(f"{path}: not valid TOML ({error})") from None
    names = setting_names()
    settings, spelled_as = {}, {}
    for key, value in values.items():
        field = "preset" if key == "preset" else names.get(key)
        if field is None:
            known = sorted({flag(name).removeprefix("--") for name in names.values()} | {"preset"})
            raise SettingError(f"{path}: unknown setting {key!r}; known settings: {', '.join(known)}")
        if field in settings:
            raise SettingError(f"{path}: {key!r} and {spelled_as[field]!r} set the same setting")
        settings[field], spelled_as[field] = value, key
    return settings


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
        if name in FIXED_ON_RESUME:
            raise SettingError(f"--resume: {flag(name)} {value!r} contradicts the saved run ({where}); the "
                               f"model and data split cannot change, start a new run instead")
        if not allow_changes:
            raise SettingError(f"--resume: {flag(name)} {value!r} contradicts the saved run ({where}); pass "
                               f"--override to change it")
    return TrainConfig.from_dict({**saved.to_dict(), **changes})


def _tied_embedding(values: dict) -> dict:
    """``values`` with ``embedding_size`` as wide as the hidden layer where ``tie_weights`` asks
    for it and no layer gave one: tying needs them equal, so ``--hidden-size 128`` on a tied
    preset means a 128-wide embedding too."""
    if values.get("tie_weights") and "embedding_size" not in values:
        return {**values, "embedding_size": values.get("hidden_size", LanguageModelSettings.hidden_size)}
    return values


def resolve_settings(flags: TrainConfig | dict | None = None, config_file: str | os.PathLike | None = None,
                     preset: str | None = None, saved: TrainConfig | None = None, override: bool = False,
                     saved_source: str = "the saved run") -> TrainConfig:
    """The settings of a run, from its layers, and a :class:`SettingError` for what conflicts.

    A new run (``saved`` None): the defaults, then (with ``init_from``) the trained model's
    settings, then ``preset`` (or the file's ``preset`` key), then ``config_file``, then
    ``flags``; a fine-tuned run that would change the model's shape is refused. A resumed run: ``saved``, changed by the file and
    the flags as :func:`resolve_resume` allows (``override`` lets it change more); a preset is
    refused, since the saved settings already hold it.
    """
    if isinstance(flags, TrainConfig):
        if config_file is not None or preset is not None:
            raise SettingError("give either complete settings or a preset and a config file, not both")
        return resolve_resume(saved, flags.to_dict(), override, saved_source) if saved else flags
    if override and saved is None:
        raise SettingError("--override only applies with --resume")
    file_values = load_toml(config_file) if config_file is not None else {}
    preset = preset or file_values.pop("preset", None)
    file_values.pop("preset", None)
    if config_file is not None:
        TrainConfig.from_dict({**(saved.to_dict() if saved else {}), **file_values},
                              source=str(config_file))  # name the file on a bad value
    requested = {**file_values, **(flags or {})}
    if saved is not None:
        if preset is not None:
            raise SettingError("--preset cannot change a resumed run; its settings are in the run's config.json")
        return resolve_resume(saved, requested, override, saved_source)
    preset = preset or "default"
    if preset not in PRESETS:
        raise SettingError(f"--preset: unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    init_from = requested.get("init_from")
    if init_from is None:
        return TrainConfig.from_dict(_tied_embedding({**PRESETS[preset], **requested}))
    from charrnn.training.fine_tuning import OVER_PRESETS, check_same_shape, source_settings

    # The trained model's settings are a layer under the preset's, so that a preset or a flag
    # that changes the shape is refused rather than ignored.
    inherited = source_settings(TrainConfig(init_from=init_from).init_from)
    kept = {name: inherited[name] for name in OVER_PRESETS}
    settings = TrainConfig.from_dict({**inherited, **PRESETS[preset], **kept, **requested})
    check_same_shape(settings, inherited)
    return settings
