"""Benchmark: preparing a ~100 MB corpus (targets: >= 20 MB/s, peak memory <= 3x the file size).

Usage::

    python bench/bench_prepare.py [--size-mb 100] [--source FILE | --synthetic]

Writes a corpus of about ``--size-mb`` MB in a temporary folder (tinyshakespeare repeated, or
synthetic mixed English / Korean / emoji text), then runs, each in its own child process so
that ``ru_maxrss`` is that child's own peak:

- ``import``: importing :mod:`charrnn.corpus` alone (the interpreter, numpy and torch);
- ``reference``: ``open().read()`` and ``np.frombuffer`` of the same file, the least a
  reader can do;
- ``prepare``: :func:`charrnn.corpus.prepare_corpus` from scratch;
- ``reuse``: the same call again, which finds the prepared corpus and encodes nothing.

Times are measured inside the child around the work only (imports excluded). The file is
deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=100.0, help="corpus size in MB (default 100)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--source", type=Path, default=None, help=f"text to repeat (default {DEFAULT_SOURCE})")
    group.add_argument("--synthetic", action="store_true", help="mixed English/Korean/emoji text instead")
    args = parser.parse_args()
    source = None if args.synthetic else (args.source or DEFAULT_SOURCE)
    if source is not None and not source.is_file():
        print(f"{source} not found: using synthetic text", file=sys.stderr)
        source = None

    with tempfile.TemporaryDirectory(prefix="charrnn-bench-prepare-") as folder:
        corpus_path, out_dir = Path(folder) / "corpus.txt", Path(folder) / "prepared"
        make_corpus(corpus_path, int(args.size_mb * 1e6), source)
        size = corpus_path.stat().st_size
        megabytes = size / 1e6
        print(f"corpus: {megabytes:.1f} MB ({'synthetic' if source is None else source.name} repeated)")

        imported = run_child("import", corpus_path, out_dir)
        reference = run_child("reference", corpus_path, out_dir)
        prepared = run_child("prepare", corpus_path, out_dir)
        reused = run_child("reuse", corpus_path, out_dir)
        assert prepared["head_round_trips"] and reused["head_round_trips"]
        print(f"prepared: {prepared['length']:,} characters, vocabulary {prepared['vocabulary_size']}, "
              f"ids {prepared['dtype']}")

        base = imported["peak_rss_bytes"]
        print(f"\n{'step':<10} {'seconds':>8} {'MB/s':>8} {'peak RSS MB':>12} {'peak/file':>10} "
              f"{'(peak-import)/file':>19}")
        for name, result in [("import", imported), ("reference", reference), ("prepare", prepared),
                             ("reuse", reused)]:
            seconds = result.get("seconds")
            speed = f"{megabytes / seconds:8.1f}" if seconds else f"{'-':>8}"
            peak = result["peak_rss_bytes"]
            print(f"{name:<10} {seconds or 0:8.3f} {speed} {peak / 1e6:12.1f} {peak / size:10.2f} "
                  f"{(peak - base) / size:19.2f}")

        speed = megabytes / prepared["seconds"]
        ratio = prepared["peak_rss_bytes"] / size
        print(f"\nprepare speed: {speed:.1f} MB/s (target >= {TARGET_MB_PER_SECOND:g}): "
              f"{'PASS' if speed >= TARGET_MB_PER_SECOND else 'FAIL'}; "
              f"{prepared['seconds'] / reference['seconds']:.1f}x the reference read's time")
        print(f"prepare peak memory: {ratio:.2f}x the file size, imports included "
              f"(target <= {TARGET_PEAK_RATIO:g}x): {'PASS' if ratio <= TARGET_PEAK_RATIO else 'FAIL'}; "
              f"reference read {reference['peak_rss_bytes'] / size:.2f}x")
        print(f"reuse: {reused['seconds'] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
