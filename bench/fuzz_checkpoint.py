"""Fuzz the checkpoint loader: mutated checkpoint files only ever raise charrnn's own clear error.

Usage::

    python bench/fuzz_checkpoint.py [--cases 3000] [--seed 0] [--results FILE.json]

The mutations and the loaders are :mod:`charrnn.fuzzing`'s. Each case must end in success (a
model with finite weights) or a one-line :class:`charrnn.errors.CharRNNError`; anything else
fails the run (exit 1) naming the case. Counts per mutation and outcome are printed and
written to ``bench/results/fuzz-checkpoint-<time>.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

import common
from charrnn.checks import non_negative_int, positive_int
from charrnn.fuzzing import fuzz


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=positive_int, default=3000, help="mutated checkpoints to load (default: 3000)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed of the mutations (default: 0)")
    common.add_common_arguments(parser)
    args = parser.parse_args(argv)
    header = common.print_machine_header()
    verdicts = common.Verdicts()
    start = time.perf_counter()
    failure, counts = None, Counter()
    try:
        counts = fuzz(args.cases, args.seed, report=lambda line: print(line, file=sys.stderr, flush=True))
    except AssertionError as error:
        failure = str(error)
    seconds = time.perf_counter() - start
    totals = Counter()
    for (kind, outcome), count in counts.items():
        totals[outcome] += count
    for (kind, outcome), count in sorted(counts.items()):
        print(f"  {kind:<30} {outcome:<8} {count}")
    detail = failure or (f"{args.cases} cases in {seconds:.1f} s: {totals['refused']} refused with a clear error, "
                         f"{totals['loaded']} loaded (the mutation did not matter), 0 other exceptions")
    verdicts.add("loaders refuse damage cleanly", failure is None, detail)
    common.write_results({"benchmark": "fuzz-checkpoint", "cases": args.cases, "seed": args.seed, "seconds": seconds,
                          "machine": header, "verdicts": verdicts.records(),
                          "counts": [[kind, outcome, count] for (kind, outcome), count in sorted(counts.items())]},
                         common.results_path("fuzz-checkpoint", args.results))
    return verdicts.finish()


if __name__ == "__main__":
    sys.exit(main())
