"""Benchmark: what each regulariser of long runs does to the validation loss, at a fixed number of steps.

Usage::

    python bench/bench_regularisers.py                      # 2x256, 2,000 steps on 300,000 characters
    python bench/bench_regularisers.py --variants base weight-dropout --steps 3000

A long run on a small corpus over-fits (the 15-minute preset is limited by that, not by
steps), so the options are compared where over-fitting shows: many passes over a small text.
Each variant trains the same model from the same seed for the same number of steps, so the
comparison does not depend on the machine's speed or load; the best validation loss (all of
the validation split) and the training loss beside it are reported, with each variant's
difference from ``base``. The time per step is reported too, as each option's cost.

No target: the figures are what the documentation of each option quotes. Exit status 0.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import common
from charrnn.checks import positive_int
from charrnn.training import train

#: The base: the former 15-minute preset's regularisation (dropout, weight decay) and schedule, smaller.
BASE = {"hidden_size": 256, "embedding_size": 64, "dropout": 0.35, "weight_decay": 0.2, "learning_rate": 4e-3,
        "min_learning_rate": 4e-4}
VARIANTS = {
    "base": {},
    "weight-dropout": {"weight_dropout": 0.3},
    "input-dropout": {"input_dropout": 0.1, "locked_dropout": True},
    "tie-weights": {"tie_weights": True, "embedding_size": 256},
    "all": {"weight_dropout": 0.3, "input_dropout": 0.1, "locked_dropout": True, "tie_weights": True,
            "embedding_size": 256},
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_arguments(parser, threads=1, data=common.DATA / "tinyshakespeare.txt", data_help="text file")
    parser.add_argument("--steps", type=positive_int, default=2000, help="steps per variant (default: 2000)")
    parser.add_argument("--characters", type=positive_int, default=300_000,
                        help="the first this many characters of the text (default: 300000)")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args(argv)
    header = common.print_machine_header(threads=args.threads)
    verdicts = common.Verdicts()
    rows = []
    with tempfile.TemporaryDirectory(prefix="charrnn-bench-regularisers-") as work:
        corpus = Path(work) / "corpus.txt"
        corpus.write_text(args.data.read_text(encoding="utf-8")[:args.characters], encoding="utf-8")
        for name in ["base", *[variant for variant in args.variants if variant != "base"]]:
            settings = {**BASE, **VARIANTS[name], "max_steps": args.steps, "eval_every": max(args.steps // 8, 1),
                        "eval_characters": 0, "num_threads": args.threads, "device": "cpu", "seed": 1337}
            started = time.perf_counter()
            result = train(settings, [corpus], Path(work) / name, progress=False)
            seconds = time.perf_counter() - started
            row = {"variant": name, "settings": VARIANTS[name], "best_val_loss": result.best_val_loss,
                   "train_loss": result.train_loss, "seconds_per_step": seconds / max(result.step, 1)}
            rows.append(row)
            base = rows[0]["best_val_loss"]
            verdicts.add(name, None, f"best validation {result.best_val_loss:.4f} nats ({result.best_val_loss - base:+.4f} "
                         f"against base), training {result.train_loss:.4f}; {row['seconds_per_step'] * 1000:.0f} ms a step")
    common.write_results({"benchmark": "regularisers", "machine": header, "base": BASE, "steps": args.steps,
                          "characters": args.characters, "rows": rows, "verdicts": verdicts.records()},
                         common.results_path("regularisers", args.results))
    return verdicts.finish()


if __name__ == "__main__":
    sys.exit(main())
