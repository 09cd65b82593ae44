"""Where a model runs: the one device choice of every command, and CPU threads.

Every command takes the same ``--device``: ``auto`` (CUDA, then Apple's MPS, then the CPU),
``cpu``, ``cuda``, ``cuda:N`` or ``mps``; asking for one that is not there is the same error
everywhere, raised before any data is read.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch

from charrnn.errors import SettingError

#: What ``--device`` accepts (``cuda:N`` too).
DEVICES = ("auto", "cpu", "cuda", "mps")
#: The default of every command.
DEFAULT_DEVICE = "auto"


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def check_device_name(request) -> str:
    """``request`` if it names a device ``--device`` accepts, else a :class:`SettingError`."""
    if isinstance(request, torch.device):
        request = str(request)
    if isinstance(request, str):
        kind, _, index = request.partition(":")
        if kind in DEVICES and not index or (kind == "cuda" and index.isdigit()):
            return request
    raise SettingError(f"--device must be one of {', '.join(DEVICES)} or cuda:N, got {request!r}")


def select_device(request: str | torch.device = DEFAULT_DEVICE, local_rank: int = 0,
                  distributed: bool = False) -> torch.device:
    """The :class:`torch.device` for ``request`` (see :data:`DEVICES`), checked to be usable.

    ``auto`` picks CUDA, then MPS, then the CPU. Plain ``cuda`` is GPU ``local_rank`` (each of
    ``torchrun``'s processes on a machine its own GPU). A device that is not there is a
    :class:`SettingError` naming it and what to use instead.
    """
    request = check_device_name(request)
    cuda = torch.cuda.is_available()
    if request == "auto":
        request = "cuda" if cuda else "mps" if _mps_available() else "cpu"
    kind, _, index = request.partition(":")
    if kind == "cuda":
        if not cuda:
            raise SettingError(f"--device {request}: no CUDA device is available (try --device auto or cpu)")
        number = int(index) if index else local_rank
        if number >= torch.cuda.device_count():
            raise SettingError(f"--device {request}: there is no CUDA device {number}, only "
                               f"{torch.cuda.device_count()} on this machine")
        torch.cuda.set_device(number)
        return torch.device("cuda", number)
    if kind == "mps":
        if not _mps_available():
            raise SettingError("--device mps: no Apple MPS device is available (try --device auto or cpu)")
        if distributed:
            raise SettingError("--device mps: distributed training on MPS is not supported; use --device cpu")
        return torch.device("mps")
    return torch.device("cpu")


def check_amp(amp: str, device: torch.device) -> None:
    """Refuse mixed precision (``'bf16'``, ``'fp16'``) off CUDA, where autocast is not what it is on a GPU."""
    if amp != "none" and device.type != "cuda":
        raise SettingError(f"--amp {amp} needs a CUDA device, and this run is on {device.type}; pass --amp none "
                           f"(a new run may leave --amp out)")


def default_num_threads(local_world_size: int = 1) -> int:
    """CPU threads per process: the usable cores, shared among this machine's processes."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // local_world_size)


@contextmanager
def num_threads(count: int | None):
    """Run the ``with`` block on ``count`` CPU threads (None: leave PyTorch's), then restore them."""
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if count is not None:
            torch.set_num_threads(previous)
