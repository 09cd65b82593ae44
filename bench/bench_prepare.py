"""Benchmark: preparing a ~100 MB corpus (targets: >= 20 MB/s, peak memory <= 3x the file size).

Usage::

    python bench/bench_prepare.py [--size-mb 100] [--data FILE | --synthetic] [--results FILE.json]

Writes a corpus of about ``--size-mb`` MB in a temporary folder (tinyshakespeare repeated, or
synthetic mixed English / Korean / emoji text), then runs, each in its own child process so
that ``ru_maxrss`` is that child's own peak:

- ``import``: importing :mod:`charrnn.corpus` alone (the interpreter, numpy and torch);
- ``reference``: ``open().read()`` and ``np.frombuffer`` of the same file, the least a
  reader can do;
- ``prepare``: :func:`charrnn.corpus.prepare_corpus` from scratch;
- ``reuse``: the same call again, which finds the prepared corpus and encodes nothing.

Times are measured inside the child around the work only (imports excluded). The file is
deleted at the end. One verdict line per target (speed, peak memory), the reuse time reported;
results go to ``bench/results/prepare-<time>.json`` (or ``--results``); the exit status is 1
when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import DATA, Verdicts, add_common_arguments, print_machine_header, results_path, write_results

TARGET_MB_PER_SECOND = 20.0
TARGET_PEAK_RATIO = 3.0

CHILD = r"""
import json, sys, time
mode, corpus_path, out_dir = sys.argv[1:4]
import numpy as np
from charrnn.corpus import prepare_corpus
result = {}
if mode == "reference":
    start = time.perf_counter()
    with open(corpus_path, "rb") as handle:
        data = handle.read()
    array = np.frombuffer(data, dtype=np.uint8)
    result["checksum"] = int(array[::4096].sum())
    result["seconds"] = time.perf_counter() - start
elif mode in ("prepare", "reuse"):
    start = time.perf_counter()
    corpus = prepare_corpus([corpus_path], out_dir)
    result["seconds"] = time.perf_counter() - start
    result["length"] = len(corpus)
    result["vocabulary_size"] = corpus.vocabulary.size
    result["dtype"] = corpus.ids.dtype.name
    with open(corpus_path, "rb") as handle:
        head = handle.read(4096).decode("utf-8", errors="ignore")[:1000]
    result["head_round_trips"] = corpus.vocabulary.decode(corpus.ids[:len(head)]) == head
print(json.dumps(result))
"""


def make_corpus(path: Path, size_bytes: int, source: Path | None) -> None:
    """Write about ``size_bytes`` of text to ``path``, a block at a time."""
    if source is not None:
        block = source.read_bytes()
    else:
        block = ("The quick brown fox jumps over the lazy dog. 다람쥐 헌 쳇바퀴에 타고파. "
                 "🙂🚀 Grüße, café, naïve — “quotes”.\n" * 2000).encode("utf-8")
    written = 0
    with open(path, "wb") as handle:
        while written < size_bytes:
            handle.write(block)
            written += len(block)


def run_child(mode: str, corpus_path: Path, out_dir: Path) -> dict:
    """Run one measurement in a child process; its own peak RSS comes from ``wait4``."""
    process = subprocess.Popen([sys.executable, "-c", CHILD, mode, str(corpus_path), str(out_dir)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = process.stdout.read(), process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{mode} child failed ({process.returncode}):\n{stderr.decode()}")
    result = json.loads(stdout)
    result["peak_rss_bytes"] = usage.ru_maxrss * 1024  # Linux reports kilobytes
    return result


def main(argv=None) -> int:
    """Run the benchmark; the exit status is 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=100.0, help="corpus size in MB (default 100)")
    group = parser.add_mutually_exclusive_group()
    add_common_arguments(group, data=DATA / "tinyshakespeare.txt", data_help="text to repeat", results=False)
    group.add_argument("--synthetic", action="store_true", help="mixed English/Korean/emoji text instead")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    source = None if args.synthetic else args.data
    if source is not None and not source.is_file():
        print(f"{source} not found: using synthetic text", file=sys.stderr)
        source = None
    header = print_machine_header()

    with tempfile.TemporaryDirectory(prefix="charrnn-bench-prepare-") as folder:
        corpus_path, out_dir = Path(folder) / "corpus.txt", Path(folder) / "prepared"
        make_corpus(corpus_path, int(args.size_mb * 1e6), source)
        size = corpus_path.stat().st_size
        megabytes = size / 1e6
        print(f"corpus: {megabytes:.1f} MB ({'synthetic' if source is None else source.name} repeated)")
        steps = {mode: run_child(mode, corpus_path, out_dir) for mode in ("import", "reference", "prepare", "reuse")}
    prepared, reference = steps["prepare"], steps["reference"]
    assert prepared["head_round_trips"] and steps["reuse"]["head_round_trips"]
    print(f"prepared: {prepared['length']:,} characters, vocabulary {prepared['vocabulary_size']}, "
          f"ids {prepared['dtype']}")

    base = steps["import"]["peak_rss_bytes"]
    print(f"\n{'step':<10} {'seconds':>8} {'MB/s':>8} {'peak RSS MB':>12} {'peak/file':>10} "
          f"{'(peak-import)/file':>19}")
    for name, result in steps.items():
        seconds = result.get("seconds")
        speed = f"{megabytes / seconds:8.1f}" if seconds else f"{'-':>8}"
        peak = result["peak_rss_bytes"]
        print(f"{name:<10} {seconds or 0:8.3f} {speed} {peak / 1e6:12.1f} {peak / size:10.2f} "
              f"{(peak - base) / size:19.2f}")

    speed = megabytes / prepared["seconds"]
    ratio = prepared["peak_rss_bytes"] / size
    verdicts = Verdicts()
    verdicts.add("prepare speed", speed >= TARGET_MB_PER_SECOND,
                 f"{speed:.1f} MB/s (target >= {TARGET_MB_PER_SECOND:g}); "
                 f"{prepared['seconds'] / reference['seconds']:.1f}x the reference read's time")
    verdicts.add("prepare peak memory", ratio <= TARGET_PEAK_RATIO,
                 f"{ratio:.2f}x the file size, imports included (target <= {TARGET_PEAK_RATIO:g}x); "
                 f"reference read {reference['peak_rss_bytes'] / size:.2f}x")
    verdicts.add("reuse", None, f"{steps['reuse']['seconds'] * 1000:.1f} ms to find the prepared corpus again")
    write_results({"benchmark": "prepare", "machine": header, "size_bytes": size,
                   "source": str(source) if source else "synthetic", "steps": steps,
                   "megabytes_per_second": speed, "peak_ratio": ratio, "verdicts": verdicts.records()},
                  results_path("prepare", args.results))
    return verdicts.finish()


if __name__ == "__main__":
    sys.exit(main())
