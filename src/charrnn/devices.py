"""Where a model runs: the one device choice of every command, and CPU threads.

Every command takes the same ``--device``: ``auto`` (CUDA, then Apple's MPS, then the CPU),
``cpu``, ``cuda``, ``cuda:N`` or ``mps``; asking for one that is not there is the same error
everywhere, raised before any data is read.

CPU threads: with no ``--threads``, a command takes the cores that other processes leave free
(:func:`default_num_threads`), and a training run keeps adjusting as the machine's load
changes (:class:`ThreadGovernor`). PyTorch's own default, every core, collapses beside a busy
one: its OpenMP threads wait on each other while one of them waits for a core.
"""

from __future__ import annotations

import math
import os
import time
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


def cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 arithmetic (AVX-512 BF16 or AMX), from ``/proc/cpuinfo``."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_amp(amp: str, device: torch.device) -> str:
    """``amp`` as the trainer runs it: ``'auto'`` is ``'bf16'`` on a CPU that computes in
    bfloat16 (AVX-512 BF16 or AMX), else ``'none'``.

    On such CPUs bfloat16 was measured to learn more per minute than float32; on a GPU it has not
    been measured yet, so ``'auto'`` leaves CUDA in float32 (``--amp bf16`` asks for it there).
    """
    if amp != "auto":
        return amp
    return "bf16" if device.type == "cpu" and cpu_has_bf16() else "none"


def check_amp(amp: str, device: torch.device) -> None:
    """Refuse mixed precision where autocast does not do it: ``'fp16'`` off CUDA, ``'bf16'`` on MPS.

    ``'bf16'`` runs on CUDA and on a CPU (PyTorch's CPU autocast, oneDNN's bfloat16 kernels,
    fast on CPUs with AVX-512 BF16 or AMX instructions).
    """
    if amp == "fp16" and device.type != "cuda":
        raise SettingError(f"--amp fp16 needs a CUDA device, and this run is on {device.type}; pass --amp bf16 "
                           f"(mixed precision on a CPU) or --amp none")
    if amp == "bf16" and device.type not in ("cuda", "cpu"):
        raise SettingError(f"--amp bf16 runs on CUDA or a CPU, and this run is on {device.type}; pass --amp none")


def _usable_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def _busy_jiffies(cpus: list[int]) -> tuple[int, int] | None:
    """(busy, total) clock ticks of ``cpus`` since boot, from ``/proc/stat``; None where there is none."""
    wanted = {f"cpu{cpu}" for cpu in cpus}
    busy = total = 0
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            for line in handle:
                name, *fields = line.split()
                if name in wanted:
                    # user nice system idle iowait irq softirq steal: idle and iowait are free time.
                    values = [int(value) for value in fields[:8]]
                    total += sum(values)
                    busy += sum(values) - values[3] - values[4]
    except (OSError, ValueError, IndexError):
        return None
    return (busy, total) if total else None


class LoadMeter:
    """How many of this process's cores other processes keep busy, between two readings."""

    def __init__(self):
        self.cpus = _usable_cpus()
        self._last = self._reading()

    def _reading(self):
        return _busy_jiffies(self.cpus), time.process_time()

    def others_busy(self) -> float | None:
        """Cores busy with other processes since the last call (or since this meter was made)."""
        (jiffies, own), (last_jiffies, last_own) = self._reading(), self._last
        self._last = (jiffies, own)
        if jiffies is None or last_jiffies is None or jiffies[1] <= last_jiffies[1]:
            return None
        busy, total = jiffies[0] - last_jiffies[0], jiffies[1] - last_jiffies[1]
        seconds = total / (os.sysconf("SC_CLK_TCK") * len(self.cpus))
        return max(0.0, (busy / total) * len(self.cpus) - (own - last_own) / max(seconds, 1e-9))


#: A core counts as taken by other processes when they keep it this busy: below it, our own
#: thread on it still gets most of it, and a quiet machine's noise (a process exiting, a flush)
#: must not cost a thread.
TAKEN = 0.75


def default_num_threads(local_world_size: int = 1, sample_seconds: float = 0.1) -> int:
    """CPU threads per process: the usable cores, shared among this machine's processes, less
    the cores other processes keep busy (at least :data:`TAKEN` of each, measured over
    ``sample_seconds``; 0 skips it).

    Under ``torchrun`` (``local_world_size`` above 1) the cores are split evenly instead: the
    other ranks, starting at the same moment, would read as load.
    """
    cores = len(_usable_cpus())
    share = max(1, cores // local_world_size)
    if local_world_size > 1 or sample_seconds <= 0 or share == 1:
        return share
    global _last_choice
    now = time.monotonic()
    if _last_choice is not None and now - _last_choice[0] < _CHOICE_LIFETIME:
        return _last_choice[1]  # calls in a row (a grid search's fits) measure once
    meter = LoadMeter()
    time.sleep(sample_seconds)
    others = meter.others_busy()
    threads = share if others is None else max(1, min(share, share - int(others + 1 - TAKEN)))
    _last_choice = (time.monotonic(), threads)
    return threads


#: (when, threads) of the last measured choice, and how long it stands.
_last_choice: tuple[float, int] | None = None
_CHOICE_LIFETIME = 2.0


class ThreadGovernor:
    """Keeps a long computation on the cores other processes leave free, as their load changes.

    :meth:`update` is cheap to call often (every training step): every ``interval`` seconds it
    measures the others' load and moves PyTorch's thread count between 1 and the usable cores,
    down when others take a core (at least ``busy`` of one), up when they leave it (less than
    ``idle`` of one). At the shapes we train, 1 and 2 threads give bitwise the same numbers.
    """

    def __init__(self, interval: float = 10.0, busy: float = TAKEN, idle: float = 0.3):
        self.interval, self.busy, self.idle = interval, busy, idle
        self.cores = len(_usable_cpus())
        self.meter = LoadMeter()
        self.next_check = time.monotonic() + interval
        self.changes: list[tuple[float, int]] = []  # (others' busy cores, new thread count)

    def update(self) -> None:
        """Measure and adjust when ``interval`` has passed since the last time."""
        now = time.monotonic()
        if now < self.next_check or self.cores == 1:
            return
        self.next_check = now + self.interval
        others = self.meter.others_busy()
        if others is None:
            return
        current, free = torch.get_num_threads(), self.cores - others
        wanted = current
        if current > 1 and free < current - self.busy:  # others took at least `busy` of a core in use
            wanted = max(1, math.floor(free + 1 - self.busy))
        elif current < self.cores and free >= current + 1 - self.idle:  # a core is nearly free again
            wanted = min(self.cores, math.floor(free + self.idle))
        if wanted != current:
            torch.set_num_threads(wanted)
            self.changes.append((others, wanted))


@contextmanager
def num_threads(count: int | None):
    """Run the ``with`` block on ``count`` CPU threads, then restore PyTorch's count.

    None: :func:`default_num_threads`, the cores that other processes leave free now.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(count if count is not None else default_num_threads())
    try:
        yield
    finally:
        torch.set_num_threads(previous)
