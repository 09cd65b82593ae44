"""What every benchmark shares: its flags, its machine header, interleaved timing, verdicts, results.

A benchmark script reads, top to bottom::

    parser = argparse.ArgumentParser(description=...)
    add_common_arguments(parser, threads=1, rounds=3, data=DATA / "tinyshakespeare.txt")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    header = print_machine_header()
    timings = interleaved({"charrnn": ours, "reference": theirs}, args.rounds)
    verdicts = Verdicts()
    verdicts.add("speed", ratio >= 0.95, f"ours / reference {ratio:.3f} (target >= 0.95)")
    write_results({"benchmark": "train", "machine": header, "verdicts": verdicts.records()},
                  results_path("train", args.results))
    return verdicts.finish()  # the exit status: 1 when a target was missed

The scripts run as ``python bench/NAME.py``, which puts this folder first on ``sys.path``, so
they ``import common``; a test that loads a script by its path adds ``bench/`` to ``sys.path``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
from pathlib import Path
from typing import Callable, NamedTuple

import torch

from charrnn.checks import positive_int

HERE = Path(__file__).resolve().parent
#: Where results go unless ``--results FILE`` says otherwise (ignored by git).
RESULTS = HERE / "results"
#: The data beside the repository: ``names-gender/``, ``tinyshakespeare.txt``.
DATA = HERE.parents[1] / "shared" / "data"
#: The default of a flag :func:`add_common_arguments` leaves out.
NOT_OFFERED = object()


# -- flags ------------------------------------------------------------------------------------------
def add_common_arguments(parser: argparse.ArgumentParser, *, threads=NOT_OFFERED, rounds: int | None = None,
                         data: Path | None = None, data_help: str = "the data to read",
                         results: bool = True) -> None:
    """Add the flags the benchmarks share, with the same names, meanings and help everywhere.

    Each flag is added only where the script has the notion (give its default):

    - ``--threads N`` (``threads``: an int, a list of ints for a script that measures each in
      turn, or None for PyTorch's own default): ``torch.set_num_threads``;
    - ``--rounds N`` (``rounds``): timed rounds of each measurement, interleaved;
    - ``--data PATH`` (``data``, described by ``data_help``);
    - ``--results FILE`` (``results``): the JSON report, default ``bench/results/<name>-<time>.json``.
    """
    if threads is not NOT_OFFERED:
        several = isinstance(threads, (list, tuple))
        shown = " ".join(map(str, threads)) if several else ("PyTorch's, one per core" if threads is None
                                                             else threads)
        parser.add_argument("--threads", type=positive_int, nargs="+" if several else None,
                            default=list(threads) if several else threads, metavar="N",
                            help="torch CPU threads (torch.set_num_threads)"
                                 + ("; each measured in turn" if several else "") + f" (default: {shown})")
    if rounds is not None:
        parser.add_argument("--rounds", type=positive_int, default=rounds, metavar="N",
                            help=f"timed rounds of each measurement, interleaved (default: {rounds})")
    if data is not None:
        parser.add_argument("--data", type=Path, default=data, metavar="PATH",
                            help=f"{data_help} (default: {data})")
    if results:
        parser.add_argument("--results", type=Path, metavar="FILE",
                            help="write the JSON report here (default: bench/results/<benchmark>-<time>.json)")


# -- the machine ----------------------------------------------------------------------------------
def _cpuinfo() -> tuple[str | None, bool | None]:
    """The CPU's model name and whether it has ``avx512_bf16``, from ``/proc/cpuinfo`` (Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or None, None
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.MULTILINE)
    return (model.group(1).strip() if model else platform.processor() or None,
            "avx512_bf16" in flags.group(1).split() if flags else None)


def machine_header(threads: int | list[int] | None = None) -> dict:
    """What the figures depend on: torch, its threads (or ``threads``), the CPUs, the load now."""
    model, bf16 = _cpuinfo()
    return {"torch": torch.__version__, "threads": torch.get_num_threads() if threads is None else threads,
            "cpus": os.cpu_count(), "cpu_model": model, "avx512_bf16": bf16,
            "python": platform.python_version(), "load_average_before": list(os.getloadavg()),
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}


def format_machine_header(header: dict) -> str:
    """One line of :func:`machine_header`, saying what a load above 0 means."""
    threads = header["threads"]
    threads = " and ".join(map(str, threads)) if isinstance(threads, list) else threads
    bf16 = {True: "has", False: "no", None: "unknown"}[header["avx512_bf16"]]
    load = header["load_average_before"]
    return (f"torch {header['torch']}, {threads} thread(s); {header['cpus']} CPUs ({header['cpu_model']}, "
            f"avx512_bf16: {bf16}); load average {' '.join(f'{x:.2f}' for x in load)} "
            "(above 0: other processes share the CPUs, so speeds are pessimistic)")


def print_machine_header(threads: int | list[int] | None = None) -> dict:
    """Print :func:`machine_header` as one line and return it."""
    header = machine_header(threads)
    print(format_machine_header(header), flush=True)
    return header


# -- timing ---------------------------------------------------------------------------------------
class Timing(NamedTuple):
    """One timed call: wall-clock seconds, this process's CPU seconds, and what the call returned."""

    wall: float
    cpu: float
    result: object = None


def timed(function: Callable[[], object]) -> Timing:
    """Call ``function()`` once and time it."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu, result)


def interleaved(candidates: dict[str, Callable[[], object]], rounds: int, *, warmup: int = 0,
                alternate: bool = False) -> dict[str, list[Timing]]:
    """Time each candidate once per round, in turn (A, B, A, B, ...), so that load slows all alike.

    ``warmup`` untimed calls of each come first. With ``alternate`` the order reverses every
    other round (A, B, B, A, A, B, ...), so that no candidate always runs right after another.
    A candidate that must leave its own set-up out can time itself and return that: the
    return value is kept as ``Timing.result``. Returns each candidate's timings, round by round.
    """
    if rounds < 1:
        raise ValueError(f"rounds={rounds} cannot be less than 1")
    for _ in range(warmup):
        for candidate in candidates.values():
            candidate()
    timings = {name: [] for name in candidates}
    for round_index in range(rounds):
        order = list(candidates)
        if alternate and round_index % 2 == 1:
            order.reverse()
        for name in order:
            timings[name].append(timed(candidates[name]))
    return timings


# -- verdicts -------------------------------------------------------------------------------------
class Verdict(NamedTuple):
    """One line of a benchmark's verdict: ``passed`` is None for a figure reported without a target."""

    name: str
    passed: bool | None
    detail: str

    def line(self) -> str:
        """``PASS name: detail`` (``FAIL``, or ``INFO`` without a target)."""
        label = {True: "PASS", False: "FAIL", None: "INFO"}[self.passed]
        return f"{label} {self.name}: {self.detail}"


class Verdicts:
    """The verdicts of one run: each printed as it comes, then a summary and the exit status."""

    def __init__(self):
        self.verdicts: list[Verdict] = []

    def add(self, name: str, passed: bool | None, detail: str) -> Verdict:
        """Record and print a verdict (``passed`` None: reported, no target)."""
        verdict = Verdict(name, None if passed is None else bool(passed), detail)
        self.verdicts.append(verdict)
        print(verdict.line(), flush=True)
        return verdict

    @property
    def failed(self) -> list[str]:
        """The names of the targets missed."""
        return [verdict.name for verdict in self.verdicts if verdict.passed is False]

    def exit_status(self) -> int:
        """1 if any target was missed, else 0."""
        return 1 if self.failed else 0

    def records(self) -> list[dict]:
        """The verdicts as JSON-ready dicts."""
        return [verdict._asdict() for verdict in self.verdicts]

    def finish(self) -> int:
        """Print the summary line and return :meth:`exit_status`."""
        judged = sum(verdict.passed is not None for verdict in self.verdicts)
        summary = f"SUMMARY: {judged - len(self.failed)}/{judged} targets met" if judged else "SUMMARY: no target"
        if self.failed:
            summary += f"; MISSED: {', '.join(self.failed)}"
        if judged < len(self.verdicts):
            summary += f"; {len(self.verdicts) - judged} reported without a verdict"
        print(summary, flush=True)
        return self.exit_status()


# -- results --------------------------------------------------------------------------------------
def results_path(name: str, override: Path | None = None) -> Path:
    """``override`` if given, else ``bench/results/<name>-<date>-<time>.json``."""
    if override is not None:
        return Path(override)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ValueError(f"name={name!r} must be a file name of letters, digits, '.', '_' and '-'")
    return RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"


def write_results(report: dict, path: Path) -> Path:
    """Write ``report`` (with the load average now, as ``load_average_after``) as JSON, and say where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {**report, "load_average_after": list(os.getloadavg())}
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"results: {path}", flush=True)
    return path
