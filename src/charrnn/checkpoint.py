"""Checkpoints: a model, its vocabulary and its settings in one folder, saved and loaded safely.

Every model charrnn trains, the language model and the classifier alike, is saved in one
format. A checkpoint folder holds::

    model.safetensors   the weights (the model's state_dict())
    config.json         {"format": "charrnn-checkpoint", "kind": "language-model" | "classifier",
                         "model": {...}, "training": {...}}
    vocab.json          the characters, in id order
    *.safetensors/json  extras (a classifier's labels.json; the trainer's optimizer and state)

``kind`` says which model the folder holds and is checked on load: a classifier given to
``charrnn sample`` is refused with the command to use instead, and the other way round.

Nothing here unpickles: tensors are safetensors and the rest JSON, so loading a file from a
stranger never executes code. A folder is written under a temporary name and swapped in whole
(:func:`charrnn.files.write_folder`), so a crash at any moment leaves the previous checkpoint.

A run directory (what ``charrnn train`` writes) keeps ``checkpoints/best`` and
``checkpoints/latest``; wherever a checkpoint is asked for, the run directory works too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from charrnn.errors import CharRNNError
from charrnn.files import CheckpointError, load_tensors, previous_copy, read_json, save_tensors, write_folder, write_json
from charrnn.model import CharLM, CharLMConfig
from charrnn.pretrained import PRETRAINED, pretrained_path
from charrnn.vocabulary import VOCABULARY_FILE, Vocabulary

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
VOCAB_FILE = VOCABULARY_FILE
#: A classifier checkpoint's class names.
LABELS_FILE = "labels.json"
#: A blended classifier's n-gram model: its terms and settings (``.json``) and arrays (``.safetensors``).
NGRAMS = "ngrams"
NGRAM_FILES = (f"{NGRAMS}.json", f"{NGRAMS}.safetensors")
CHECKPOINT_FORMAT = "charrnn-checkpoint"
#: What a run directory's ``config.json`` says it is.
RUN_FORMAT = "charrnn-run"
#: A run directory's folder of checkpoints, and the two it keeps (a run resolves to best first).
CHECKPOINTS_FOLDER = "checkpoints"
BEST, LATEST = "best", "latest"

#: The kinds of model a checkpoint can hold, and the command that reads each.
LANGUAGE_MODEL, CLASSIFIER = "language-model", "classifier"
COMMANDS = {LANGUAGE_MODEL: "charrnn sample` or `charrnn eval", CLASSIFIER: "charrnn classify predict"}

_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # pickle protocol 2+ and torch.save's zip archive


@dataclass
class LoadedModel:
    """A model loaded from a checkpoint, ready to use.

    Attributes
    ----------
    model : CharLM (or the checkpoint kind's model class)
        In eval mode, on the requested device.
    vocabulary : Vocabulary
    config : CharLMConfig (or the kind's configuration class)
    path : Path
        The checkpoint folder actually loaded (a run directory resolves to one inside it).
    """

    model: torch.nn.Module
    vocabulary: Vocabulary
    config: CharLMConfig
    path: Path


# -- kinds -------------------------------------------------------------------------------------
def checkpoint_kind(values) -> str | None:
    """The kind of model a ``config.json`` (of a checkpoint or a run) describes, or None.

    Checkpoints and runs written before the field existed were language models; a classifier
    of that time (a flat ``config.json`` with ``num_classes``) is ``'classifier-0.1'``.
    """
    if not isinstance(values, dict):
        return None
    kind = values.get("kind")
    if isinstance(kind, str) and kind in COMMANDS:  # an edited file may hold any JSON there
        return kind
    if "kind" not in values and values.get("format") in (CHECKPOINT_FORMAT, RUN_FORMAT):
        return LANGUAGE_MODEL
    if "format" not in values and "num_classes" in values:
        return "classifier-0.1"
    return None


def check_kind(folder: Path, values, expected: str) -> None:
    """Refuse ``folder`` unless its ``config.json`` ``values`` describe a model of ``expected`` kind."""
    found = checkpoint_kind(values)
    if found == expected:
        return
    if found == "classifier-0.1":
        raise CheckpointError(f"{folder}: a classifier saved by charrnn 0.1, whose checkpoint format is no longer "
                              f"read; train it again with `charrnn classify train`")
    if found is None:
        raise CheckpointError(f"{folder}: not a {expected} checkpoint ({folder / CONFIG_FILE} names no kind of model)")
    raise CheckpointError(f"{folder}: this is a {found} checkpoint, not a {expected} one; use `{COMMANDS[found]}`")


def run_kind(folder: str | os.PathLike) -> str | None:
    """The kind of run or checkpoint ``folder`` already holds (None when it holds none)."""
    file = Path(folder) / CONFIG_FILE
    if not file.is_file():
        return None
    try:
        values = read_json(file)
    except CheckpointError:
        return "damaged"
    return checkpoint_kind(values) or "unknown"


# -- finding a checkpoint ----------------------------------------------------------------------
def existing_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The whole checkpoint saved at ``folder`` (e.g. a run's ``checkpoints/latest``), or None.

    After a crash between the two renames of a save, that is the parked previous copy.
    """
    folder = Path(folder)
    for candidate in (folder, previous_copy(folder)):
        if (candidate / MODEL_FILE).is_file():
            return candidate
    return None


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint folder that ``path`` names.

    A checkpoint folder is itself; a run directory gives its best checkpoint (by validation
    loss), or its latest one when there is no best yet; a ``model.safetensors`` file gives its
    folder; the name of a model shipped with charrnn (:mod:`charrnn.pretrained`), when no file
    of that name exists, gives its folder. Anything else is a :class:`CheckpointError` saying
    what was expected.
    """
    path = Path(path)
    if not path.exists():
        shipped = pretrained_path(str(path))
        if shipped is None:
            raise CheckpointError(f"{path}: no such checkpoint, run directory or pretrained model "
                                  f"(pretrained: {', '.join(sorted(PRETRAINED))}; `charrnn models` lists them)")
        path = shipped
    if path.is_file():
        if path.name == MODEL_FILE:
            return path.parent
        with open(path, "rb") as handle:
            head = handle.read(4)
        kind = ("a pickle or torch.save file, refused without unpickling"
                if head.startswith(_PICKLE_MAGIC) else "a file")
        raise CheckpointError(f"{path}: is {kind}; expected a checkpoint folder (holding "
                              f"{MODEL_FILE}, {CONFIG_FILE} and {VOCAB_FILE}) or a run directory")
    if (path / MODEL_FILE).exists():
        return path
    is_run = (path / CHECKPOINTS_FOLDER).is_dir()  # the trainer makes it before anything else
    if not is_run and (path / CONFIG_FILE).exists():
        return path  # a damaged checkpoint folder: the loader names the missing file
    # A run directory, or the checkpoints folder inside one.
    folders = path / CHECKPOINTS_FOLDER if is_run else path
    for name in (BEST, LATEST):
        found = existing_checkpoint(folders / name)
        if found is not None:
            return found
    if is_run:
        raise CheckpointError(f"{path}: the run has no checkpoint yet ({CHECKPOINTS_FOLDER}/{BEST} and "
                              f"{CHECKPOINTS_FOLDER}/{LATEST} are missing)")
    raise CheckpointError(f"{path}: not a checkpoint folder (no {MODEL_FILE}) nor a run directory "
                          f"(no {CHECKPOINTS_FOLDER}/{BEST} or {CHECKPOINTS_FOLDER}/{LATEST})")


# -- loading -----------------------------------------------------------------------------------
def read_checkpoint_config(folder: str | os.PathLike, model_class: type = CharLM):
    """The model configuration and the training settings (``{}`` if none) of a checkpoint or run.

    The folder must hold a model of ``model_class``'s kind (``model_class.KIND``).
    """
    folder = Path(folder)
    file = folder / CONFIG_FILE
    values = read_json(file)
    check_kind(folder, values, model_class.KIND)
    if not isinstance(values.get("model"), dict):
        raise CheckpointError(f"{file}: expected a JSON object with a \"model\" object of settings")
    try:
        config = model_class.CONFIG.from_dict(values["model"])
    except CharRNNError as error:
        raise CheckpointError(f"{file}: {error}") from None
    except TypeError as error:  # a required setting is missing
        raise CheckpointError(f"{file}: bad model settings ({error})") from None
    training = values.get("training") or {}
    if not isinstance(training, dict):
        raise CheckpointError(f"{file}: \"training\" must be a JSON object")
    return config, training


def load_state_tensors(file: str | os.PathLike, expected: dict[str, torch.Tensor],
                       tensors: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Tensors from ``file`` checked name by name against ``expected`` (a model's state_dict).

    Every expected name must be there with the expected shape, a floating dtype and finite
    values; nothing else may be. Tensors come back converted to each expected dtype.
    ``tensors``, if given, are the file's, already read.
    """
    file = Path(file)
    tensors = load_tensors(file) if tensors is None else tensors
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
                ([f"unexpected {', '.join(unexpected)}"] if unexpected else [])
        raise CheckpointError(f"{file}: tensors do not match the configuration ({'; '.join(parts)})")
    loaded = {}
    for name, reference in expected.items():
        tensor = tensors[name]
        if tuple(tensor.shape) != tuple(reference.shape):
            raise CheckpointError(f"{file}: tensor {name} has shape {list(tensor.shape)}, the configuration "
                                  f"expects {list(reference.shape)}")
        if not tensor.is_floating_point():
            raise CheckpointError(f"{file}: tensor {name} is {tensor.dtype}, expected floating point")
        if not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{file}: tensor {name} holds NaN or infinite values")
        loaded[name] = tensor.to(reference.dtype)
    return loaded


def _model_from_file(file: Path, config, model_class: type) -> torch.nn.Module:
    """A model of ``config`` holding the weights of ``file``, checked before any allocation.

    The sizes the configuration names are checked against the file's tensors first
    (``model_class.expected_shapes``), so a damaged configuration naming huge sizes fails
    cleanly instead of exhausting memory: the model built afterwards is no larger than what
    the file already holds.
    """
    tensors = load_tensors(file)
    layers = {name.split(".")[2] for name in tensors if name.startswith("rnn.cells.") and name.count(".") >= 3}
    if len(layers) != config.num_layers:
        raise CheckpointError(f"{file}: holds {len(layers)} recurrent layer(s) but the configuration says "
                              f"num_layers={config.num_layers}")
    for name, shape in model_class.expected_shapes(config).items():
        found = tuple(tensors[name].shape) if name in tensors else None
        if found != shape:
            what = "is missing" if found is None else f"has shape {list(found)}"
            raise CheckpointError(f"{file}: tensor {name} {what}, the configuration expects {list(shape)}")
    try:
        # Built on the CPU for real: the meta device's first use imports much of PyTorch's
        # compiler stack (a second or two), more than building these small models costs.
        model = model_class(config)
    except (RuntimeError, ValueError, OverflowError) as error:
        raise CheckpointError(f"{file}: the configuration describes no buildable model "
                              f"({str(error).splitlines()[0][:200]})") from None
    model.load_state_dict(load_state_tensors(file, model.state_dict(), tensors))
    return model


def load_checkpoint(path: str | os.PathLike, model_class: type = CharLM, map_location="cpu") -> LoadedModel:
    """Load the model of a checkpoint folder or run directory (see :func:`resolve_checkpoint`).

    Every file is checked before use: the kind of model, the configuration against the
    weights' names and shapes, and the vocabulary against the configuration. Any mismatch or
    damage is one :class:`CheckpointError` naming the file at fault.
    """
    folder = resolve_checkpoint(path)
    missing = [name for name in (CONFIG_FILE, VOCAB_FILE, MODEL_FILE) if not (folder / name).is_file()]
    if CONFIG_FILE in missing:
        raise CheckpointError(f"{folder}: checkpoint is missing {CONFIG_FILE}")
    config, _ = read_checkpoint_config(folder, model_class)  # first: the kind of model is the first question
    if missing:
        raise CheckpointError(f"{folder}: checkpoint is missing {missing[0]}")
    vocabulary = Vocabulary.load(folder / VOCAB_FILE)
    if vocabulary.size != config.vocab_size:
        raise CheckpointError(f"{folder / VOCAB_FILE}: holds {vocabulary.size} characters but "
                              f"{folder / CONFIG_FILE} says vocab_size={config.vocab_size}")
    model = _model_from_file(folder / MODEL_FILE, config, model_class)
    try:
        model.to(map_location)
    except (RuntimeError, AssertionError) as error:  # e.g. "cuda" on a machine without one
        raise CharRNNError(f"cannot move the model to {map_location!r}: {str(error).splitlines()[0]}") from None
    return LoadedModel(model=model.eval(), vocabulary=vocabulary, config=config, path=folder)


def load_model(path: str | os.PathLike, map_location="cpu") -> LoadedModel:
    """Load the language model of a checkpoint folder or run directory.

    Examples
    --------
    With a run folder written by ``charrnn train ... --out runs/shakespeare``::

        loaded = load_model("runs/shakespeare")   # its best checkpoint
        loaded.vocabulary.decode([0, 1])
    """
    return load_checkpoint(path, CharLM, map_location)


# -- saving ------------------------------------------------------------------------------------
def _check_replaceable(directory: Path) -> None:
    """Refuse to overwrite a folder that is not a checkpoint (say, a mistyped path to a home)."""
    if directory.exists() and not directory.is_dir():
        raise CharRNNError(f"{directory}: exists and is not a folder; cannot write a checkpoint there")
    if directory.is_dir() and any(directory.iterdir()) and not (directory / MODEL_FILE).exists():
        raise CharRNNError(f"{directory}: folder is not empty and holds no checkpoint; refusing to "
                           f"replace it")


def save_checkpoint(directory: str | os.PathLike, model: torch.nn.Module, vocabulary: Vocabulary, config,
                    extra_tensors: dict[str, dict[str, torch.Tensor]] | None = None,
                    extra_json: dict[str, object] | None = None, training: dict | None = None) -> Path:
    """Write a checkpoint folder at ``directory``, whole or not at all.

    Parameters
    ----------
    directory : path
        The checkpoint folder; an existing checkpoint there is replaced atomically.
    model : a charrnn model (``CharLM``, ``CharClassifier``: its class names the ``kind``)
    vocabulary, config : the model's vocabulary and configuration
    extra_tensors : dict, optional
        ``{"optimizer": {name: tensor}}`` writes ``optimizer.safetensors``.
    extra_json : dict, optional
        ``{"trainer": value}`` writes ``trainer.json``.
    training : dict, optional
        Training settings stored beside the model's in ``config.json``.

    Returns
    -------
    Path : the checkpoint folder.
    """
    directory = Path(directory)
    _check_replaceable(directory)
    if vocabulary.size != config.vocab_size:
        raise CharRNNError(f"vocabulary has {vocabulary.size} characters but config.vocab_size is "
                           f"{config.vocab_size}")
    with write_folder(directory, "the checkpoint") as temporary:
        save_tensors(temporary / MODEL_FILE, model.state_dict(), metadata={"format": CHECKPOINT_FORMAT})
        write_json(temporary / CONFIG_FILE, {"format": CHECKPOINT_FORMAT, "version": 1, "kind": type(model).KIND,
                                             "model": config.to_dict(), "training": training or {}})
        vocabulary.save(temporary / VOCAB_FILE)
        for stem, tensors in (extra_tensors or {}).items():
            save_tensors(temporary / f"{stem}.safetensors", tensors)
        for stem, value in (extra_json or {}).items():
            write_json(temporary / f"{stem}.json", value)
    return directory
