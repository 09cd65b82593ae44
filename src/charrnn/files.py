"""Safe files: every write goes to a temporary name and is renamed; no pickle is ever read.

Tensors live in safetensors files and everything else in JSON, so loading a checkpoint
never executes code.
"""

from __future__ import annotations

import json
import os
import tempfile
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
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise FileWriteError(path, error.strerror or str(error)) from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes the file private (0600); a saved file is meant to be read like any other.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException as error:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        if isinstance(error, OSError) and not isinstance(error, CharRNNError):
            raise FileWriteError(path, error.strerror or str(error)) from None
        raise
    return path


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_json(path: str | os.PathLike, value) -> Path:
    """Write ``value`` as indented UTF-8 JSON, atomically."""
    return atomic_write(path, json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike):
    """Read a JSON file, turning every failure into a :class:`CheckpointError` naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a folder, expected a JSON file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: not valid JSON ({error})") from None
    except RecursionError:  # e.g. [[[[...]]]] nested deeper than Python's stack
        raise CheckpointError(f"{path}: not valid JSON (nested too deeply)") from None
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read ({error.strerror})") from None


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> Path:
    """Write ``tensors`` to a safetensors file, atomically (tensors are moved to the CPU)."""
    cpu = {name: tensor.detach().to("cpu").contiguous() for name, tensor in tensors.items()}
    return atomic_write(path, save_safetensors_bytes(cpu, metadata=metadata))


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors file onto the CPU; anything else is a :class:`CheckpointError`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read ({error.strerror})") from None
    try:
        return load_safetensors_bytes(data)
    except (SafetensorError, ValueError, RuntimeError, OverflowError, UnicodeDecodeError) as error:
        kind = "a pickle file, refused without unpickling" if data[:1] == b"\x80" or data[:2] == b"PK" else "not a valid safetensors file"
        raise CheckpointError(f"{path}: {kind} ({str(error).splitlines()[0][:200]})") from None
