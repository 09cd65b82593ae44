"""Benchmark: charrnn's CPU dropout against PyTorch's, forward and backward, in one run.

Usage::

    python bench/bench_dropout.py                # float32 and bfloat16, the default's and the preset's shapes
    python bench/bench_dropout.py --threads 1 --rounds 50

``charrnn.dropout.dropout`` draws its mask four elements to a 64-bit draw; PyTorch's CPU
dropout (``F.dropout``) draws one element at a time (``bernoulli_``). Each round times one
forward and backward pass of each on a tensor of the layer outputs a training step drops: batch
32 x sequence 64 x 320 units (the defaults) and x 384 (``--preset cpu-15min``, which drops twice
a step). The two alternate round by round; each keeps its median.

Target: charrnn's takes at most 1 / 1.5 of PyTorch's time (a speed-up of 1.5 or more) in
every row.
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

import common
from charrnn.dropout import dropout

TARGET = 1.5
SHAPES = ((32, 64, 320), (32, 64, 384))
P = 0.2


def _pass(function, inputs: torch.Tensor, gradient: torch.Tensor):
    """One forward and backward pass of ``function`` on ``inputs``."""
    def run():
        inputs.grad = None
        function(inputs, P).backward(gradient)
    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_common_arguments(parser, threads=2, rounds=30, results=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    header = common.print_machine_header()
    verdicts, rows = common.Verdicts(), []
    print(f"{'shape':>14} {'dtype':>9} {'PyTorch ms':>11} {'charrnn ms':>11} {'speed-up':>9}")
    for shape in SHAPES:
        for dtype in (torch.float32, torch.bfloat16):
            inputs = torch.randn(shape, dtype=dtype, requires_grad=True)
            gradient = torch.randn(shape, dtype=dtype)
            timings = common.interleaved({
                "pytorch": _pass(lambda x, p: F.dropout(x, p, True), inputs, gradient),
                "charrnn": _pass(dropout, inputs, gradient)}, args.rounds, warmup=3, alternate=True)
            theirs, ours = (statistics.median(t.wall for t in timings[name]) for name in ("pytorch", "charrnn"))
            ratio = theirs / ours
            shape_name, dtype_name = "x".join(map(str, shape)), str(dtype).removeprefix("torch.")
            print(f"{shape_name:>14} {dtype_name:>9} {theirs * 1e3:11.2f} {ours * 1e3:11.2f} {ratio:9.2f}")
            rows.append({"shape": list(shape), "dtype": str(dtype), "pytorch_s": theirs, "charrnn_s": ours,
                         "speed_up": ratio})
            verdicts.add(f"dropout {shape_name} {dtype_name}", ratio >= TARGET,
                         f"{ratio:.2f}x PyTorch's F.dropout (target >= {TARGET}x), forward and backward")
    common.write_results({"machine": header, "p": P, "rounds": args.rounds, "rows": rows,
                          "verdicts": verdicts.records()}, common.results_path("bench_dropout", args.results))
    return verdicts.finish()


if __name__ == "__main__":
    raise SystemExit(main())
