"""Checkpoints: a model, its vocabulary and its settings in one folder, saved and loaded safely.

A checkpoint folder holds::

    model.safetensors   the weights (CharLM.state_dict())
    config.json         {"format": "charrnn-checkpoint", "model": {...}, "training": {...}}
    vocab.json          the characters, in id order
    *.safetensors/json  extras the trainer adds (optimizer.safetensors, trainer.json, ...)

Nothing here unpickles: tensors are safetensors and the rest JSON, so loading a file from a
stranger never executes code. A folder is written under a temporary name and then renamed
into place, so a crash at any moment leaves the previous checkpoint whole.

A run directory (what ``charrnn train`` writes) keeps ``checkpoints/best`` and
``checkpoints/latest``; wherever a checkpoint is asked for, the run directory works too.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from charrnn.errors import CharRNNError
from charrnn.files import CheckpointError, load_tensors, read_json, save_tensors, write_json
from charrnn.model import CharLM, CharLMConfig
from charrnn.vocabulary import Vocabulary

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
CHECKPOINT_FORMAT = "charrnn-checkpoint"
#: A run directory's folder of checkpoints, and the two it keeps (a run resolves to best first).
CHECKPOINTS_FOLDER = "checkpoints"
BEST, LATEST = "best", "latest"

_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # pickle protocol 2+ and torch.save's zip archive


@dataclass
class LoadedModel:
    """A model loaded from a checkpoint, ready to use.

    Attributes
    ----------
    model : CharLM
        In eval mode, on the requested device.
    vocabulary : Vocabulary
    config : CharLMConfig
    path : Path
        The checkpoint folder actually loaded (a run directory resolves to one inside it).
    """

    model: CharLM
    vocabulary: Vocabulary
    config: CharLMConfig
    path: Path


# -- finding a checkpoint ----------------------------------------------------------------------
def _previous_name(folder: Path) -> Path:
    """Where :func:`replace_folder` parks the old folder for the instant between two renames."""
    return folder.parent / f".{folder.name}.previous"


def _whole_checkpoint(folder: Path) -> Path | None:
    """``folder`` if it holds a checkpoint, else its parked previous copy if that does, else None."""
    for candidate in (folder, _previous_name(folder)):
        if (candidate / MODEL_FILE).is_file():
            return candidate
    return None


def existing_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The whole checkpoint saved at ``folder`` (e.g. a run's ``checkpoints/latest``), or None.

    After a crash between the two renames of a save, that is the parked previous copy.
    """
    return _whole_checkpoint(Path(folder))


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint folder that ``path`` names.

    A checkpoint folder is itself; a run directory gives its best checkpoint (by validation
    loss), or its latest one when there is no best yet; a ``model.safetensors`` file gives its
    folder. Anything else is a :class:`CheckpointError` saying what was expected.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint or run directory")
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
        return path  # a damaged checkpoint folder: load_model names the missing file
    # A run directory, or the checkpoints folder inside one.
    folders = path / CHECKPOINTS_FOLDER if is_run else path
    for name in (BEST, LATEST):
        found = _whole_checkpoint(folders / name)
        if found is not None:
            return found
    if is_run:
        raise CheckpointError(f"{path}: the run has no checkpoint yet ({CHECKPOINTS_FOLDER}/{BEST} and "
                              f"{CHECKPOINTS_FOLDER}/{LATEST} are missing)")
    raise CheckpointError(f"{path}: not a checkpoint folder (no {MODEL_FILE}) nor a run directory "
                          f"(no {CHECKPOINTS_FOLDER}/{BEST} or {CHECKPOINTS_FOLDER}/{LATEST})")


# -- loading -----------------------------------------------------------------------------------
def read_checkpoint_config(folder: str | os.PathLike) -> tuple[CharLMConfig, dict]:
    """The model configuration and the training settings (``{}`` if none) of a checkpoint or run."""
    file = Path(folder) / CONFIG_FILE
    values = read_json(file)
    if not isinstance(values, dict) or not isinstance(values.get("model"), dict):
        raise CheckpointError(f"{file}: expected a JSON object with a \"model\" object of settings")
    try:
        config = CharLMConfig.from_dict(values["model"])
    except CharRNNError as error:
        raise CheckpointError(f"{file}: {error}") from None
    except TypeError as error:  # a required setting is missing
        raise CheckpointError(f"{file}: bad model settings ({error})") from None
    training = values.get("training") or {}
    if not isinstance(training, dict):
        raise CheckpointError(f"{file}: \"training\" must be a JSON object")
    return config, training


def read_vocabulary(file: str | os.PathLike) -> Vocabulary:
    """A :class:`Vocabulary` from a ``vocab.json`` file; damage is a :class:`CheckpointError`."""
    file = Path(file)
    values = read_json(file)
    characters = values.get("characters") if isinstance(values, dict) else None
    if (not isinstance(characters, list) or not characters
            or not all(isinstance(char, str) and len(char) == 1 for char in characters)
            or characters != sorted(set(characters))):
        raise CheckpointError(f"{file}: expected {{\"characters\": [...]}}, a sorted list of "
                              f"distinct single characters")
    return Vocabulary(characters)


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


def _model_from_file(file: Path, config: CharLMConfig) -> CharLM:
    """A :class:`CharLM` of ``config`` holding the weights of ``file``, checked before any allocation.

    The sizes the configuration names are checked against the file's tensors first, so a
    damaged configuration naming huge sizes fails cleanly instead of exhausting memory: the
    model built afterwards is no larger than what the file already holds.
    """
    tensors = load_tensors(file)
    layers = {name.split(".")[2] for name in tensors if name.startswith("rnn.cells.") and name.count(".") >= 3}
    if len(layers) != config.num_layers:
        raise CheckpointError(f"{file}: holds {len(layers)} recurrent layer(s) but the configuration says "
                              f"num_layers={config.num_layers}")
    for name, shape in (("embedding.weight", (config.vocab_size, config.embedding_size)),
                        ("head.weight", (config.vocab_size, config.hidden_size))):
        found = tuple(tensors[name].shape) if name in tensors else None
        if found != shape:
            what = "is missing" if found is None else f"has shape {list(found)}"
            raise CheckpointError(f"{file}: tensor {name} {what}, the configuration expects {list(shape)}")
    try:
        # Built on the CPU for real (not on the meta device, whose first use imports much of
        # PyTorch's compiler stack, a second or two), and afresh, since buffers that are not
        # saved (constants of the cells) must be computed.
        model = CharLM(config)
    except (RuntimeError, ValueError, OverflowError) as error:
        raise CheckpointError(f"{file}: the configuration describes no buildable model "
                              f"({str(error).splitlines()[0][:200]})") from None
    state = load_state_tensors(file, model.state_dict(), tensors)
    model.load_state_dict(state)
    return model


def load_model(path: str | os.PathLike, map_location="cpu") -> LoadedModel:
    """Load the model of a checkpoint folder or run directory (see :func:`resolve_checkpoint`).

    Every file is checked before use: the configuration against the weights' names and
    shapes, and the vocabulary against the embedding. Any mismatch or damage is one
    :class:`CheckpointError` naming the file at fault.

    Examples
    --------
    With a run folder written by ``charrnn train ... --out runs/shakespeare``::

        loaded = load_model("runs/shakespeare")   # its best checkpoint
        loaded.vocabulary.decode([0, 1])
    """
    folder = resolve_checkpoint(path)
    for name in (CONFIG_FILE, VOCAB_FILE, MODEL_FILE):
        if not (folder / name).is_file():
            raise CheckpointError(f"{folder}: checkpoint is missing {name}")
    config, _ = read_checkpoint_config(folder)
    vocabulary = read_vocabulary(folder / VOCAB_FILE)
    if vocabulary.size != config.vocab_size:
        raise CheckpointError(f"{folder / VOCAB_FILE}: holds {vocabulary.size} characters but "
                              f"{folder / CONFIG_FILE} says vocab_size={config.vocab_size}")
    model = _model_from_file(folder / MODEL_FILE, config)
    try:
        model.to(map_location)
    except (RuntimeError, AssertionError) as error:  # e.g. "cuda" on a machine without one
        raise CharRNNError(f"cannot move the model to {map_location!r}: {str(error).splitlines()[0]}") from None
    return LoadedModel(model=model.eval(), vocabulary=vocabulary, config=config, path=folder)


# -- saving ------------------------------------------------------------------------------------
def _fsync_folder(folder: Path) -> None:
    """Make renames inside ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def replace_folder(source: Path, target: Path) -> None:
    """Put the complete folder ``source`` at ``target``, replacing what is there.

    POSIX cannot rename over a non-empty folder, so the old one is first parked at
    ``.<name>.previous``; a crash between the two renames leaves that whole copy, which
    :func:`resolve_checkpoint` and the next save pick up.
    """
    previous = _previous_name(target)
    if previous.exists():
        if target.exists():
            shutil.rmtree(previous)
        else:  # a crash between the two renames: the parked copy is the only one
            os.replace(previous, target)
    if target.exists():
        os.replace(target, previous)
    os.replace(source, target)
    _fsync_folder(target.parent)
    shutil.rmtree(previous, ignore_errors=True)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _check_replaceable(directory: Path) -> None:
    """Refuse to overwrite a folder that is not a checkpoint (say, a mistyped path to a home)."""
    if directory.exists() and not directory.is_dir():
        raise CharRNNError(f"{directory}: exists and is not a folder; cannot write a checkpoint there")
    if directory.is_dir() and any(directory.iterdir()) and not (directory / MODEL_FILE).exists():
        raise CharRNNError(f"{directory}: folder is not empty and holds no checkpoint; refusing to "
                           f"replace it")


def save_model_checkpoint(directory: str | os.PathLike, model: torch.nn.Module, vocabulary: Vocabulary,
                          config: CharLMConfig, extra_tensors: dict[str, dict[str, torch.Tensor]] | None = None,
                          extra_json: dict[str, object] | None = None, training: dict | None = None) -> Path:
    """Write a checkpoint folder at ``directory``, whole or not at all.

    Parameters
    ----------
    directory : path
        The checkpoint folder; an existing checkpoint there is replaced atomically.
    model : CharLM (or a module with the same ``state_dict``)
    vocabulary, config : the model's vocabulary and :class:`CharLMConfig`
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
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        for leftover in directory.parent.glob(f".{directory.name}.tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)  # from a save killed midway
        temporary = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
        temporary.chmod(0o777 & ~_umask())  # mkdtemp makes it private; a checkpoint is meant to be shared
    except OSError as error:
        raise CharRNNError(f"{directory.parent}: cannot write a checkpoint here ({error.strerror})",
                           exit_code=1) from None
    try:
        state = {name: tensor for name, tensor in model.state_dict().items()}
        save_tensors(temporary / MODEL_FILE, state, metadata={"format": CHECKPOINT_FORMAT})
        write_json(temporary / CONFIG_FILE, {"format": CHECKPOINT_FORMAT, "version": 1,
                                             "model": config.to_dict(), "training": training or {}})
        write_json(temporary / VOCAB_FILE, {"characters": vocabulary.characters})
        for stem, tensors in (extra_tensors or {}).items():
            save_tensors(temporary / f"{stem}.safetensors", tensors)
        for stem, value in (extra_json or {}).items():
            write_json(temporary / f"{stem}.json", value)
        _fsync_folder(temporary)
        replace_folder(temporary, directory)
    except OSError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        raise CharRNNError(f"{directory}: could not save the checkpoint ({error.strerror or error}); "
                           f"the previous one is unchanged", exit_code=1) from None
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return directory


# -- optimizer and random-generator state as tensors + JSON ------------------------------------
def optimizer_state_to_tensors(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into safetensors-ready tensors and a JSON structure.

    Tensor ``state[i][name]`` becomes ``"state.<i>.<name>"``; the JSON keeps the other values
    and the param groups.
    """
    tensors, state = {}, {}
    for index, parameter_state in state_dict["state"].items():
        entry = {}
        for name, value in parameter_state.items():
            if isinstance(value, torch.Tensor):
                key = f"state.{index}.{name}"
                tensors[key] = value
                entry[name] = {"tensor": key}
            else:
                entry[name] = value
        state[str(index)] = entry
    return tensors, {"state": state, "param_groups": state_dict["param_groups"]}


def optimizer_state_from_tensors(tensors: dict[str, torch.Tensor], structure: dict, file: Path) -> dict:
    """Rebuild an optimizer ``state_dict`` from :func:`optimizer_state_to_tensors`'s output."""
    try:
        state = {}
        for index, entry in structure["state"].items():
            state[int(index)] = {name: tensors[value["tensor"]] if isinstance(value, dict) else value
                                 for name, value in entry.items()}
        groups = []
        for group in structure["param_groups"]:
            group = dict(group)
            if "betas" in group:
                group["betas"] = tuple(group["betas"])
            groups.append(group)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(f"{file}: optimizer state is damaged ({type(error).__name__}: {error})") from None
    return {"state": state, "param_groups": groups}


def random_state_tensors() -> dict[str, torch.Tensor]:
    """Every random generator the trainer draws from, as tensors (no pickle needed)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    tensors = {
        "rng.torch": torch.get_rng_state(),
        "rng.numpy.keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "rng.numpy.extra": torch.tensor([position, has_gauss], dtype=torch.int64),
        "rng.numpy.cached": torch.tensor([cached], dtype=torch.float64),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{index}"] = state
    return tensors


def restore_random_state(tensors: dict[str, torch.Tensor]) -> None:
    """Undo :func:`random_state_tensors` (CUDA generators only where the devices exist)."""
    torch.set_rng_state(tensors["rng.torch"])
    position, has_gauss = tensors["rng.numpy.extra"].tolist()
    np.random.set_state(("MT19937", tensors["rng.numpy.keys"].numpy().astype(np.uint32), int(position),
                         int(has_gauss), float(tensors["rng.numpy.cached"][0])))
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            if f"rng.cuda.{index}" in tensors:
                torch.cuda.set_rng_state(tensors[f"rng.cuda.{index}"], index)


# -- run directories ---------------------------------------------------------------------------
LOCK_FILE = ".lock"


@contextmanager
def lock_run_directory(run_dir: str | os.PathLike):
    """Hold an exclusive lock on ``run_dir`` (created if needed) for the ``with`` block.

    A second process that asks for the same folder gets a :class:`CharRNNError` naming the
    process that holds it. The operating system drops the lock when its holder dies, even by
    ``kill -9``, so a crashed run never leaves the folder locked.
    """
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
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
