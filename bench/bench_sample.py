"""Benchmark: sampling speed and memory of :func:`charrnn.sampling.sample` (issue 3).

Targets: >= 20,000 characters/s from a 2x512 LSTM on 2 CPU cores, memory flat in the length.

Usage::

    python bench/bench_sample.py [--threads 1 2] [--characters 20000] [--rounds 3]
                                 [--streams 16 64] [--dtypes float32 bfloat16]
                                 [--memory-lengths 10000 100000] [--results FILE.json]

A 2x512 LSTM language model with random weights (65 characters, embedding 64: the shape of a
tinyshakespeare model) samples at temperature 1. In the same run, for each thread count, and
interleaved round by round so that a busy machine slows both alike:

- ``charrnn``: our sampler, consuming the character stream;
- ``reference``: the naive loop a user writes, ``nn.Embedding`` -> ``nn.LSTM`` (one step,
  state carried) -> ``nn.Linear`` -> softmax -> ``torch.multinomial`` per character;
- ``floor``: the matrix-vector products of one character alone (every weight read once), the
  bound no float32 sampler of one stream passes on the machine: the gap to it is our overhead;
- ``streams``: :func:`charrnn.sampling.sample_streams` making ``--streams`` samples together
  (``charrnn sample --num-samples N``), in each of ``--dtypes``, counting every stream's
  characters. The dtypes of one stream count are timed in alternation, round by round.

One stream is bound by memory bandwidth: each character reads all 13 MB of float32 weights.
Several streams share each read, and bfloat16 halves it and runs the products on the CPU's
bfloat16 instructions where it has them.

Each rate is the best of ``--rounds`` (another process can only slow a round down). Then the
memory check: resident memory (VmRSS) before and after streaming 10k characters, and before
and after 100k; flat means the 100k run grows it by less than 4 MB.

With ``--accuracy-run RUN_DIR`` (a trained run, e.g. from ``bench_train.py --quality``), it
also measures what bfloat16 costs: the loss per character of the run's best checkpoint on the
first ``--accuracy-characters`` of its validation split, read through the sampler's stepper one
character at a time in float32 and in bfloat16.

Results print as a table with ratios (ours / 20,000 target, ours / reference), then one
verdict line per target (one stream; the most streams of each dtype; memory); they go to
``bench/results/sample-<time>.json`` (or ``--results``). The exit status is 1 when a target is
missed.
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from charrnn.checks import positive_int
from charrnn.commands.sample import DTYPES
from charrnn.model import CharLM, CharLMConfig
from charrnn.sampling import make_generator, sample, sample_streams
from charrnn.vocabulary import Vocabulary

from common import (Verdicts, add_common_arguments, interleaved, print_machine_header, results_path, timed,
                    write_results)

TARGET_CHARACTERS_PER_SECOND = 20_000
#: The memory check passes when streaming the long length grows resident memory by less.
FLAT_MEMORY_SLACK_MB = 4.0
VOCABULARY = Vocabulary([chr(code) for code in range(32, 32 + 64)] + ["\n"])  # 65 characters
HIDDEN_SIZE, NUM_LAYERS, EMBEDDING_SIZE = 512, 2, 64


def build_models(seed: int = 0):
    """Our model and the reference's modules, both with random weights (speed only)."""
    torch.manual_seed(seed)
    config = CharLMConfig(vocab_size=VOCABULARY.size, cell="lstm", hidden_size=HIDDEN_SIZE,
                          num_layers=NUM_LAYERS, embedding_size=EMBEDDING_SIZE)
    ours = CharLM(config).eval()
    reference = nn.ModuleDict({
        "embedding": nn.Embedding(VOCABULARY.size, EMBEDDING_SIZE),
        "lstm": nn.LSTM(EMBEDDING_SIZE, HIDDEN_SIZE, NUM_LAYERS, batch_first=True),
        "head": nn.Linear(HIDDEN_SIZE, VOCABULARY.size),
    }).eval()
    return ours, reference


def sample_ours(model, characters: int, seed: int = 0) -> int:
    """Stream ``characters`` from our sampler; the number it gave."""
    return sum(1 for _ in sample(model, VOCABULARY, prime="\n", length=characters, generator=make_generator(seed)))


def sample_together(model, streams: int, dtype: torch.dtype, characters: int, seed: int = 0) -> int:
    """Make ``streams`` samples together in ``dtype``, about ``characters`` in all; the number made."""
    return sum(len(column) for column in sample_streams(model, VOCABULARY, streams, prime="\n", dtype=dtype,
                                                        length=max(1, characters // streams),
                                                        generator=make_generator(seed)))


def sample_reference(modules, characters: int, seed: int = 0) -> int:
    """The naive ``nn.LSTM``-per-character loop, ``characters`` long; the number it gave."""
    generator = make_generator(seed)
    ids = torch.tensor([[VOCABULARY.index["\n"]]])  # (1, 1)
    state = None
    with torch.inference_mode():
        for _ in range(characters):
            outputs, state = modules["lstm"](modules["embedding"](ids), state)  # (1, 1, N)
            logits = modules["head"](outputs[:, -1])  # (1, V)
            ids = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)  # (1, 1)
            VOCABULARY.characters[ids.item()]
    return characters


def matvec_floor(model):
    """A function of ``characters`` running the matrix-vector products alone (the LSTM's weights,
    read once per character): what no sampler of this model in float32 can beat on this machine."""
    from charrnn.fused import inference_layers

    weights = [(layer[0], layer[1]) for layer in inference_layers(model.rnn).weights]
    vectors = [(torch.randn(w_ih.shape[1]), torch.randn(w_hh.shape[1])) for w_ih, w_hh in weights]
    head = model.head.weight.detach()
    hidden = torch.randn(head.shape[1])

    def run(characters: int) -> int:
        with torch.inference_mode():
            for _ in range(characters):
                for (w_ih, w_hh), (x, h) in zip(weights, vectors):
                    torch.mv(w_ih, x), torch.mv(w_hh, h)
                torch.mv(head, hidden)
        return characters

    return run


def best_rate(timings) -> float:
    """Characters per second of the fastest round (another process can only slow a round down)."""
    return max(timing.result / timing.wall for timing in timings)


def dtype_cost(run_dir: Path, characters: int, streams: int = 64) -> dict:
    """The loss per character of ``run_dir``'s best model on its validation text, stepping the
    sampler's :class:`CharacterStepper` in float32 and in bfloat16 (``streams`` slices at once)."""
    from charrnn.checkpoint import load_model, read_checkpoint_config
    from charrnn.corpus import PreparedCorpus
    from charrnn.sampling import CharacterStepper

    loaded = load_model(run_dir)
    val_fraction = read_checkpoint_config(loaded.path)[1].get("val_fraction", 0.1)
    _, val_ids = PreparedCorpus.open(Path(run_dir) / "data").split(val_fraction)
    length = min(characters, len(val_ids)) // streams
    ids = torch.as_tensor(val_ids[:streams * length].astype("int64")).view(streams, length)  # (B, L)
    losses = {}
    with torch.inference_mode():
        for name in ("float32", "bfloat16"):
            stepper = CharacterStepper(loaded.model, batch_size=streams, dtype=DTYPES[name])
            total = 0.0
            for position in range(length - 1):
                logits = stepper.step(ids[:, position]).float()  # (B, V)
                total += F.cross_entropy(logits, ids[:, position + 1], reduction="sum").item()
            losses[name] = total / (streams * (length - 1))
    return {"run": str(run_dir), "characters": streams * (length - 1), "loss_nats": losses,
            "bfloat16_minus_float32": losses["bfloat16"] - losses["float32"]}


def resident_mb() -> float:
    """This process's resident memory now (Linux VmRSS; else the peak, which only grows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def measure_memory(model, lengths: list[int]) -> list[dict]:
    """Resident memory before and after streaming each length (after a warm-up)."""
    sample_ours(model, 2000)
    rows = []
    for length in lengths:
        before = resident_mb()
        timing = timed(lambda: sample_ours(model, length, seed=1))
        after = resident_mb()
        rows.append({"characters": length, "rss_before_mb": round(before, 2), "rss_after_mb": round(after, 2),
                     "growth_mb": round(after - before, 2),
                     "characters_per_second": round(timing.result / timing.wall)})
    return rows


def measure_speed(ours, reference, args) -> tuple[list[dict], list[dict]]:
    """One stream against the reference and the floor, then the streams, for each thread count."""
    speed_rows, stream_rows = [], []
    floor = matvec_floor(ours)
    for threads in args.threads:
        torch.set_num_threads(threads)
        sample_ours(ours, 500), sample_reference(reference, 50)  # warm-up
        timings = interleaved({"charrnn": lambda: sample_ours(ours, args.characters),
                               "reference": lambda: sample_reference(reference, args.reference_characters),
                               "floor": lambda: floor(args.characters // 4)}, args.rounds)
        best, best_reference, best_floor = (best_rate(timings[name]) for name in ("charrnn", "reference", "floor"))
        speed_rows.append({"threads": threads, "characters_per_second": round(best),
                           "reference_characters_per_second": round(best_reference),
                           "matvec_floor_characters_per_second": round(best_floor),
                           "ratio_to_floor": round(best / best_floor, 3),
                           "all_rounds": [round(t.result / t.wall) for t in timings["charrnn"]],
                           "ratio_to_target": round(best / TARGET_CHARACTERS_PER_SECOND, 3),
                           "ratio_to_reference": round(best / best_reference, 2)})
        print(f"threads {threads}: charrnn {best:10,.0f} chars/s | reference (nn.LSTM per char) "
              f"{best_reference:8,.0f} chars/s | ours/target {best / TARGET_CHARACTERS_PER_SECOND:5.2f} "
              f"| ours/reference {best / best_reference:6.1f}x | matrix-vector products alone "
              f"{best_floor:8,.0f} chars/s (ours/that {best / best_floor:.2f})", flush=True)
        for streams in args.streams:
            candidates = {name: (lambda dtype=DTYPES[name]: sample_together(ours, streams, dtype, args.characters))
                          for name in args.dtypes}
            for name in args.dtypes:  # warm-up
                sample_together(ours, streams, DTYPES[name], 10 * streams)
            for dtype_name, dtype_timings in interleaved(candidates, args.rounds).items():
                rate = best_rate(dtype_timings)
                stream_rows.append({"threads": threads, "streams": streams, "dtype": dtype_name,
                                    "characters_per_second": round(rate),
                                    "all_rounds": [round(t.result / t.wall) for t in dtype_timings],
                                    "ratio_to_target": round(rate / TARGET_CHARACTERS_PER_SECOND, 3),
                                    "ratio_to_one_stream": round(rate / best, 2)})
                print(f"threads {threads}: {streams:3d} streams {dtype_name:>8}: {rate:10,.0f} chars/s "
                      f"| /target {rate / TARGET_CHARACTERS_PER_SECOND:5.2f} | /one stream {rate / best:5.1f}x",
                      flush=True)
    return speed_rows, stream_rows


def judge(speed_rows: list[dict], stream_rows: list[dict], memory_rows: list[dict], dtypes) -> Verdicts:
    """The verdicts: the best one-stream rate and each dtype's best streams rate against the
    target, and the memory growth of the longest run."""
    target = TARGET_CHARACTERS_PER_SECOND
    verdicts = Verdicts()
    best = max(speed_rows, key=lambda row: row["characters_per_second"])
    verdicts.add("one-stream speed", best["characters_per_second"] >= target,
                 f"{best['characters_per_second']:,} chars/s with {best['threads']} thread(s) = "
                 f"{best['characters_per_second'] / target:.2f} x the {target:,} target, "
                 f"{best['ratio_to_reference']:.1f} x the reference")
    for dtype_name in dtypes:
        rows = [row for row in stream_rows if row["dtype"] == dtype_name]
        if rows:
            top = max(rows, key=lambda row: row["characters_per_second"])
            verdicts.add(f"{top['streams']}-stream {dtype_name} speed", top["characters_per_second"] >= target,
                         f"{top['characters_per_second']:,} chars/s with {top['threads']} thread(s) = "
                         f"{top['characters_per_second'] / target:.2f} x the target")
    growth = memory_rows[-1]["growth_mb"]
    verdicts.add("flat memory", growth < FLAT_MEMORY_SLACK_MB,
                 f"streaming {memory_rows[-1]['characters']:,} characters grew RSS by {growth:+.2f} MB "
                 f"(flat: < {FLAT_MEMORY_SLACK_MB} MB)")
    return verdicts


def main(argv=None) -> int:
    """Run the benchmark; the exit status is 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, threads=[1, 2], rounds=3)
    parser.add_argument("--characters", type=positive_int, default=20_000, help="characters per round, ours")
    parser.add_argument("--reference-characters", type=positive_int, default=2_000,
                        help="characters per round, reference")
    parser.add_argument("--streams", type=positive_int, nargs="*", default=[16, 64],
                        help="numbers of samples made together to measure (none: skip)")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=sorted(DTYPES),
                        help="precisions of the streams' runs")
    parser.add_argument("--accuracy-run", type=Path, metavar="RUN_DIR",
                        help="a trained run: measure the loss bfloat16 costs on its validation text")
    parser.add_argument("--accuracy-characters", type=positive_int, default=50_000)
    parser.add_argument("--memory-lengths", type=positive_int, nargs=2, default=[10_000, 100_000])
    args = parser.parse_args(argv)

    ours, reference = build_models()
    header = print_machine_header(threads=args.threads)
    print(f"sampling a {NUM_LAYERS}x{HIDDEN_SIZE} LSTM (V={VOCABULARY.size}, E={EMBEDDING_SIZE}), "
          "interleaved rounds, each rate the best round", flush=True)
    speed_rows, stream_rows = measure_speed(ours, reference, args)

    torch.set_num_threads(min(args.threads))
    memory_rows = measure_memory(ours, args.memory_lengths)
    for row in memory_rows:
        print(f"memory: {row['characters']:>7,} characters: RSS {row['rss_before_mb']:.1f} -> "
              f"{row['rss_after_mb']:.1f} MB (growth {row['growth_mb']:+.2f} MB)")

    verdicts = judge(speed_rows, stream_rows, memory_rows, args.dtypes)
    growth = memory_rows[-1]["growth_mb"]
    accuracy = None
    if args.accuracy_run:
        accuracy = dtype_cost(args.accuracy_run, args.accuracy_characters)
        verdicts.add("bfloat16 accuracy", None,
                     f"{accuracy['characters']:,} validation characters of {accuracy['run']}: float32 "
                     f"{accuracy['loss_nats']['float32']:.4f} nats, bfloat16 {accuracy['loss_nats']['bfloat16']:.4f} "
                     f"({accuracy['bfloat16_minus_float32']:+.4f})")

    write_results({"benchmark": "sample", "machine": header,
                   "model": {"cell": "lstm", "hidden_size": HIDDEN_SIZE, "num_layers": NUM_LAYERS,
                             "embedding_size": EMBEDDING_SIZE, "vocab_size": VOCABULARY.size},
                   "target_characters_per_second": TARGET_CHARACTERS_PER_SECOND, "speed": speed_rows,
                   "streams": stream_rows, "accuracy": accuracy, "memory": memory_rows,
                   "memory_flat": growth < FLAT_MEMORY_SLACK_MB, "verdicts": verdicts.records()},
                  results_path("sample", args.results))
    return verdicts.finish()


if __name__ == "__main__":
    sys.exit(main())
