"""Safe files: every write goes to a temporary name and is renamed; no pickle is ever read.

Tensors live in safetensors files and everything else in JSON, so loading a checkpoint
never executes code. This module owns every way charrnn touches a file:

- :func:`atomic_write` (bytes or text), :func:`atomic_stream` (a large file written in pieces)
  and :func:`write_folder` (a whole folder, swapped in by :func:`replace_folder`): a crash or a
  full disk leaves the previous version whole, never a partial one, and no temporary behind;
- :func:`read_bytes`, :func:`read_json`, :func:`load_tensors`: a missing, unreadable or damaged
  file is one line naming it, never a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from charrnn.errors import CharRNNError


class CheckpointError(CharRNNError):
    """A checkpoint file is missing, damaged, or not what charrnn wrote."""


class FileWriteError(CharRNNError, OSError):
    """A file could not be written (a full disk, a folder that cannot be written, ...).

    Both a :class:`CharRNNError` (exit status 1, one line for the user) and an ``OSError``
    (``strerror`` holds the system's reason), so code that handles either keeps working.
    """

    def __init__(self, path: Path, strerror: str):
        self.message = f"{path}: cannot write ({strerror}); the previous file, if any, is unchanged"
        super().__init__(self.message, exit_code=1)
        self.strerror = strerror

    def __str__(self) -> str:  # the message, not OSError's "[Errno ...]" form
        return self.message


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` whole or not at all: a temporary file, fsync, then rename.

    A crash or a full disk leaves the previous file (or none) in place, never a partial one,
    and no temporary file behind. A failure to write is a :class:`FileWriteError`.
    """
    with atomic_stream(path) as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def _umask() -> int:
    """The process's file-creation mask (reading it means setting it, so it is set back at once)."""
    current = os.umask(0)
    os.umask(current)
    return current


@contextmanager
def atomic_stream(path: str | os.PathLike):
    """A binary file handle whose content appears at ``path`` only when the block ends without error.

    The streaming form of :func:`atomic_write`, for outputs too large to hold in memory whole.
    A failure to write, flush or rename is a :class:`FileWriteError`; no temporary is left.
    """
    path = Path(path)
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise FileWriteError(path, error.strerror or str(error)) from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except OSError as error:
        if isinstance(error, CharRNNError):
            raise
        raise FileWriteError(path, error.strerror or str(error)) from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def fsync_folder(folder: Path) -> None:
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


def previous_copy(folder: Path) -> Path:
    """Where :func:`replace_folder` parks the old folder for the instant between two renames."""
    return folder.parent / f".{folder.name}.previous"


def replace_folder(source: Path, target: Path) -> None:
    """Put the complete folder ``source`` at ``target``, replacing what is there.

    POSIX cannot rename over a non-empty folder, so the old one is first parked at
    :func:`previous_copy`; a crash between the two renames leaves that whole copy, which
    readers and the next save pick up.
    """
    previous = previous_copy(target)
    if previous.exists():
        if target.exists():
            shutil.rmtree(previous)
        else:  # a crash between the two renames: the parked copy is the only one
            os.replace(previous, target)
    if target.exists():
        os.replace(target, previous)
    os.replace(source, target)
    fsync_folder(target.parent)
    shutil.rmtree(previous, ignore_errors=True)


@contextmanager
def write_folder(directory: str | os.PathLike, what: str = "the folder"):
    """Build a folder under a temporary name in the ``with`` block, then swap it in at ``directory``.

    Yields the temporary folder to write into. On success it replaces ``directory`` whole
    (:func:`replace_folder`); on any failure it is removed and ``directory`` is unchanged. A
    failure of the disk is a one-line :class:`CharRNNError` (exit status 1) naming ``what``.
    """
    directory = Path(directory)
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        for leftover in directory.parent.glob(f".{directory.name}.tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)  # from a save killed midway
        temporary = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
        temporary.chmod(0o777 & ~_umask())  # mkdtemp makes it private; what we save is meant to be shared
    except OSError as error:
        raise CharRNNError(f"{directory.parent}: cannot write {what} here ({error.strerror})",
                           exit_code=1) from None
    try:
        yield temporary
        fsync_folder(temporary)
        replace_folder(temporary, directory)
    except OSError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        reason = error.strerror or str(error)
        raise CharRNNError(f"{directory}: could not save {what} ({reason}); the previous one is unchanged",
                           exit_code=1) from None
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def read_bytes(path: str | os.PathLike, expected: str = "a file", error: type[CharRNNError] = CharRNNError,
               missing: str = "no such file") -> bytes:
    """The bytes of ``path``; a missing file, a folder or a read failure is one ``error`` naming it.

    ``expected`` says what the file should have been (``"a JSON file"``), ``missing`` how to
    say that it is not there.
    """
    path = Path(path)
    with _read_errors(path, expected, error, missing):
        return path.read_bytes()


def open_text(path: str | os.PathLike, expected: str = "a text file", error: type[CharRNNError] = CharRNNError):
    """``path`` opened as UTF-8 text (universal newlines); failing to open it is one ``error``
    naming it, as in :func:`read_bytes`."""
    with _read_errors(Path(path), expected, error, "no such file"):
        return open(path, encoding="utf-8", newline=None)


@contextmanager
def _read_errors(path: Path, expected: str, error: type[CharRNNError], missing: str):
    """Turn the ways opening or reading ``path`` fails into one ``error`` line naming it."""
    try:
        yield
    except FileNotFoundError:
        raise error(f"{path}: {missing}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, expected {expected}") from None
    except OSError as reason:
        raise error(f"{path}: cannot read ({reason.strerror or reason})") from None


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append ``text`` to ``path`` and flush it (a log: a crash loses at most the line being written)."""
    path = Path(path)
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as error:
        raise FileWriteError(path, error.strerror or str(error)) from None


def make_folder(path: str | os.PathLike, what: str = "the folder") -> Path:
    """Create ``path`` and its parents if needed; a failure is one line naming ``what`` could not be made."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CharRNNError(f"{path}: cannot write {what} ({error.strerror})") from None
    return path


def write_json(path: str | os.PathLike, value) -> Path:
    """Write ``value`` as indented UTF-8 JSON, atomically."""
    return atomic_write(path, json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike):
    """Read a JSON file, turning every failure into a :class:`CheckpointError` naming the file."""
    data = read_bytes(path, "a JSON file", CheckpointError, missing="file not found")
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: not valid JSON ({error})") from None
    except RecursionError:  # e.g. [[[[...]]]] nested deeper than Python's stack
        raise CheckpointError(f"{path}: not valid JSON (nested too deeply)") from None


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> Path:
    """Write ``tensors`` to a safetensors file, atomically (tensors are moved to the CPU).

    Tensors that share memory (a tied embedding and output layer) are written as copies:
    safetensors refuses shared storage, and loading fills both names again.
    """
    cpu, seen = {}, set()
    for name, tensor in tensors.items():
        tensor = tensor.detach().to("cpu").contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        cpu[name] = tensor.clone() if pointer in seen else tensor
        seen.add(pointer)
    return atomic_write(path, save_safetensors_bytes(cpu, metadata=metadata))


def load_tensors(path: str | os.PathLike, with_metadata: bool = False):
    """Read a safetensors file onto the CPU; anything else is a :class:`CheckpointError`.

    With ``with_metadata``, returns ``(tensors, metadata)``: the header's ``__metadata__``
    strings (``{}`` when it has none).
    """
    data = read_bytes(path, "a safetensors file", CheckpointError, missing="file not found")
    try:
        tensors = load_safetensors_bytes(data)
        if not with_metadata:
            return tensors
        # The header is 8 bytes of its length, then JSON; safetensors checked it just now.
        header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
        return tensors, dict(header.get("__metadata__") or {})
    except (SafetensorError, ValueError, RuntimeError, OverflowError, UnicodeDecodeError) as error:
        kind = "a pickle file, refused without unpickling" if data[:1] == b"\x80" or data[:2] == b"PK" else "not a valid safetensors file"
        raise CheckpointError(f"{path}: {kind} ({str(error).splitlines()[0][:200]})") from None
