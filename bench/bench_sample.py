"""Benchmark: one stream and many from a 2x512 LSTM, in float32, bfloat16 and int8 (issues 3 and 12).

Usage::

    python bench/bench_sample.py [--threads 1 2] [--dtypes float32 bfloat16 int8] [--rounds 3]
                                 [--cli-lengths 2000 50000] [--characters 20000] [--streams 16 64]
                                 [--accuracy-characters 20000] [--accuracy-run RUN_DIR]
                                 [--memory-lengths 10000 100000] [--results FILE.json]

A 2x512 LSTM language model with random weights (65 characters, embedding 64: the shape of a
tinyshakespeare model; speed does not depend on the weights) samples at temperature 1. For
each thread count, in one run, interleaved round by round so that a busy machine slows all alike:

- ``cli``: what a user runs, ``charrnn sample CHECKPOINT --dtype D --threads N`` as a process of
  its own, whole; the start-up (interpreter, imports, loading) is excluded by timing two lengths
  (``--cli-lengths``) and dividing the difference in characters by the difference in seconds;
- ``charrnn``: :func:`charrnn.sampling.sample` in this process, one stream, in each dtype;
- ``step``: the sampler's step alone (:class:`charrnn.sampling.CharacterStepper`), no draw and
  no loop around it: the ratio to it is what the loop costs;
- ``products``: the bare matrix products of the same precision, on the same packed kernels
  (:class:`charrnn.quantization.PackedLinear`), one character's worth per iteration: every
  weight read once, nothing else. No sampler of that precision beats it; the ratio to it is
  what the step's element-wise work and the loop around it cost;
- ``reference``: the naive float32 loop a user writes, ``nn.Embedding`` -> ``nn.LSTM`` (one
  step, state carried) -> ``nn.Linear`` -> softmax -> ``torch.multinomial`` per character;
- ``streams``: :func:`charrnn.sampling.sample_streams` making ``--streams`` samples together
  (``charrnn sample --num-samples N``), in each dtype, counting every stream's characters.

Each rate is the best of ``--rounds`` (another process can only slow a round down). Then:

- accuracy: the loss per character of a trained model on validation text read through the
  sampler's step one character at a time (one stream, as ``charrnn sample`` runs it), in each
  dtype: by default the pretrained ``shakespeare`` model (2x256) on the last 10% of
  ``tinyshakespeare.txt``; with ``--accuracy-run RUN_DIR``, that run's best checkpoint on its own
  validation split;
- memory: resident memory (VmRSS) before and after streaming 10k characters, and 100k.

Targets (a verdict line each; the exit status is 1 when one is missed):

- one stream through the CLI, start-up excluded: >= 10,000 chars/s in the fastest dtype
  (every dtype's figure is printed beside it);
- the most streams of each dtype: >= 20,000 chars/s;
- each low-precision dtype's loss within 0.01 nats of float32's;
- memory flat in the length (the 100k run grows it by less than 4 MB).

Results go to ``bench/results/sample-<time>.json`` (or ``--results``).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from charrnn.checkpoint import save_checkpoint
from charrnn.checks import positive_int
from charrnn.commands.sample import DTYPES
from charrnn.fused import inference_layers
from charrnn.model import CharLM, CharLMConfig
from charrnn.quantization import PRECISIONS, PackedLSTM
from charrnn.sampling import CharacterStepper, make_generator, sample, sample_streams
from charrnn.vocabulary import Vocabulary

from common import (DATA, Verdicts, add_common_arguments, interleaved, print_machine_header, results_path,
                    timed, write_results)

#: One stream through the command line, start-up excluded (issue 12).
TARGET_CLI_CHARACTERS_PER_SECOND = 10_000
#: Many streams together (issue 3).
TARGET_STREAMS_CHARACTERS_PER_SECOND = 20_000
#: The most a low-precision step may add to the loss of float32, nats per character.
ACCURACY_SLACK_NATS = 0.01
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
    return ours, reference, config


# -- what is timed ------------------------------------------------------------------------------------
def sample_ours(model, characters: int, dtype=None, seed: int = 0) -> int:
    """Stream ``characters`` from our sampler; the number it gave."""
    return sum(1 for _ in sample(model, VOCABULARY, prime="\n", length=characters, dtype=dtype,
                                 generator=make_generator(seed)))


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


def bare_products(model, precision: str):
    """A function of ``characters`` running one character's matrix products per iteration, on the
    packed kernels of ``precision`` the sampler's step uses, and nothing else."""
    layers = inference_layers(model.rnn)
    packed = PackedLSTM(layers.weights, model.embedding.weight, model.head.weight, model.head.bias, precision)
    inputs = [packed.hidden[:, max(0, layer - 1) * HIDDEN_SIZE:(layer + 1) * HIDDEN_SIZE]
              for layer in range(NUM_LAYERS)]
    top = torch.zeros(1, HIDDEN_SIZE)

    def run(characters: int) -> int:
        with torch.inference_mode():
            for _ in range(characters):
                for product, vector in zip(packed.products, inputs):
                    product(vector)
                packed.head(top)
        return characters

    return run


def step_alone(model, dtype):
    """A function of ``characters`` running the sampler's step alone (no draw, no loop around it)."""
    stepper = CharacterStepper(model, dtype=dtype)
    ids = torch.tensor([VOCABULARY.index["\n"]])

    def run(characters: int) -> int:
        with torch.inference_mode():
            for _ in range(characters):
                stepper._step(ids)
        return characters

    return run


def cli_run(checkpoint: Path, length: int, dtype_name: str, threads: int) -> float:
    """Seconds of ``charrnn sample CHECKPOINT --length LENGTH`` as its own process, output discarded."""
    command = [sys.executable, "-m", "charrnn", "sample", str(checkpoint), "--length", str(length),
               "--seed", "1", "--dtype", dtype_name, "--threads", str(threads)]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def best_rate(timings) -> float:
    """Characters per second of the fastest round (another process can only slow a round down)."""
    return max(timing.result / timing.wall for timing in timings)


# -- measurements ---------------------------------------------------------------------------------
def measure_cli(checkpoint: Path, args, threads: int) -> list[dict]:
    """Each dtype through the command line: two lengths per round, interleaved; start-up excluded."""
    short, long = args.cli_lengths
    seconds = {(name, length): [] for name in args.dtypes for length in (short, long)}
    cli_run(checkpoint, 10, args.dtypes[0], threads)  # warm the file cache
    for _ in range(args.rounds):
        for name in args.dtypes:
            for length in (short, long):
                seconds[name, length].append(cli_run(checkpoint, length, name, threads))
    rows = []
    for name in args.dtypes:
        best_short, best_long = min(seconds[name, short]), min(seconds[name, long])
        rate = (long - short) / max(best_long - best_short, 1e-9)
        rows.append({"threads": threads, "dtype": name, "characters_per_second": round(rate),
                     "seconds": {str(short): [round(s, 3) for s in seconds[name, short]],
                                 str(long): [round(s, 3) for s in seconds[name, long]]},
                     "start_up_seconds": round(best_short - short / rate, 3)})
        print(f"threads {threads}: CLI, one stream {name:>8}: {rate:10,.0f} chars/s "
              f"(best of {args.rounds}: {short:,} chars in {best_short:.2f} s, {long:,} in {best_long:.2f} s; "
              f"start-up about {best_short - short / rate:.2f} s)", flush=True)
    return rows


def measure_in_process(ours, reference, args, threads: int) -> list[dict]:
    """Each dtype's sampler against the bare products of its precision, and the naive loop."""
    candidates = {"reference": lambda: sample_reference(reference, args.reference_characters)}
    for name in args.dtypes:
        if name in PRECISIONS:
            products = bare_products(ours, name)
            candidates[f"products {name}"] = lambda run=products: run(args.characters)
        stepping = step_alone(ours, DTYPES[name])
        candidates[f"step {name}"] = lambda run=stepping: run(args.characters)
        candidates[f"charrnn {name}"] = lambda dtype=DTYPES[name]: sample_ours(ours, args.characters, dtype)
    timings = interleaved(candidates, args.rounds, warmup=1)
    rates = {name: best_rate(rounds) for name, rounds in timings.items()}
    rows = []
    for name in args.dtypes:
        rate, floor, step = rates[f"charrnn {name}"], rates.get(f"products {name}"), rates[f"step {name}"]
        rows.append({"threads": threads, "dtype": name, "characters_per_second": round(rate),
                     "step_alone_characters_per_second": round(step), "ratio_to_step": round(rate / step, 3),
                     "all_rounds": [round(t.result / t.wall) for t in timings[f"charrnn {name}"]],
                     "products_characters_per_second": round(floor) if floor else None,
                     "ratio_to_products": round(rate / floor, 3) if floor else None,
                     "reference_characters_per_second": round(rates["reference"]),
                     "ratio_to_reference": round(rate / rates["reference"], 2)})
        against = f" | products alone {floor:8,.0f} (ours/that {rate / floor:.2f})" if floor else ""
        print(f"threads {threads}: in process, one stream {name:>8}: {rate:10,.0f} chars/s | step alone "
              f"{step:8,.0f} (ours/that {rate / step:.2f}){against} "
              f"| ours/naive nn.LSTM loop {rate / rates['reference']:5.1f}x", flush=True)
    return rows


def measure_streams(ours, args, threads: int) -> list[dict]:
    """``sample_streams`` with each of ``--streams`` in each dtype."""
    rows = []
    for streams in args.streams:
        candidates = {name: (lambda dtype=DTYPES[name]: sample_together(ours, streams, dtype, args.characters))
                      for name in args.dtypes}
        for dtype_name, dtype_timings in interleaved(candidates, args.rounds, warmup=1).items():
            rate = best_rate(dtype_timings)
            rows.append({"threads": threads, "streams": streams, "dtype": dtype_name,
                         "characters_per_second": round(rate),
                         "all_rounds": [round(t.result / t.wall) for t in dtype_timings]})
            print(f"threads {threads}: {streams:3d} streams {dtype_name:>8}: {rate:10,.0f} chars/s", flush=True)
    return rows


def validation_source(args):
    """(model, vocabulary, validation ids, what they are) for the accuracy check, or None."""
    from charrnn.checkpoint import load_model, read_checkpoint_config

    if args.accuracy_run is not None:
        from charrnn.corpus import PreparedCorpus

        loaded = load_model(args.accuracy_run)
        val_fraction = read_checkpoint_config(loaded.path)[1].get("val_fraction", 0.1)
        _, val_ids = PreparedCorpus.open(Path(args.accuracy_run) / "data").split(val_fraction)
        return loaded.model, loaded.vocabulary, val_ids[:args.accuracy_characters], str(args.accuracy_run)
    text_file = DATA / "tinyshakespeare.txt"
    if not text_file.is_file():
        return None
    loaded = load_model("shakespeare")
    text = text_file.read_text(encoding="utf-8")
    validation = text[int(len(text) * 0.9):][:args.accuracy_characters]
    return (loaded.model, loaded.vocabulary, loaded.vocabulary.encode(validation),
            "the pretrained shakespeare model (2x256) on the last 10% of tinyshakespeare.txt")


def measure_accuracy(args) -> dict | None:
    """The loss per character of validation text stepped through the sampler in each dtype."""
    source = validation_source(args)
    if source is None:
        return None
    model, _, ids, described = source
    ids = torch.as_tensor(ids.astype("int64"))  # (L,)
    losses = {}
    with torch.inference_mode():
        for name in args.dtypes:
            stepper = CharacterStepper(model, dtype=DTYPES[name])
            total = torch.zeros((), dtype=torch.float64)
            for position in range(len(ids) - 1):
                logits = stepper.step(ids[position:position + 1]).float()  # (1, V)
                total += F.cross_entropy(logits, ids[position + 1:position + 2], reduction="sum").double()
            losses[name] = total.item() / (len(ids) - 1)
            print(f"accuracy: {name:>8}: {losses[name]:.5f} nats/character", flush=True)
    return {"source": described, "characters": len(ids) - 1, "loss_nats": losses,
            "minus_float32": {name: loss - losses["float32"] for name, loss in losses.items()}
            if "float32" in losses else {}}


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


# -- verdicts -------------------------------------------------------------------------------------
def judge(cli_rows, process_rows, stream_rows, accuracy, memory_rows, dtypes) -> Verdicts:
    """One verdict per target (see the module's docstring)."""
    verdicts = Verdicts()
    target = TARGET_CLI_CHARACTERS_PER_SECOND
    if cli_rows:
        best = max(cli_rows, key=lambda row: row["characters_per_second"])
        others = ", ".join(f"{row['dtype']} {row['characters_per_second']:,}" for row in cli_rows
                           if row["threads"] == best["threads"])
        verdicts.add("one stream through the CLI", best["characters_per_second"] >= target,
                     f"{best['characters_per_second']:,} chars/s in {best['dtype']} with {best['threads']} "
                     f"thread(s) = {best['characters_per_second'] / target:.2f} x the {target:,} target "
                     f"(start-up excluded; all dtypes at {best['threads']} thread(s): {others})")
    for row in process_rows:
        if row["ratio_to_products"] is not None:
            verdicts.add(f"one stream {row['dtype']} in process, {row['threads']} thread(s)", None,
                         f"{row['characters_per_second']:,} chars/s = {row['ratio_to_step']:.2f} x the step alone "
                         f"({row['step_alone_characters_per_second']:,}), {row['ratio_to_products']:.2f} x the bare "
                         f"{row['dtype']} products ({row['products_characters_per_second']:,}), "
                         f"{row['ratio_to_reference']:.1f} x the naive float32 loop")
    for dtype_name in dtypes:
        rows = [row for row in stream_rows if row["dtype"] == dtype_name]
        if rows:
            top = max(rows, key=lambda row: row["characters_per_second"])
            streams_target = TARGET_STREAMS_CHARACTERS_PER_SECOND
            verdicts.add(f"{top['streams']}-stream {dtype_name} speed",
                         top["characters_per_second"] >= streams_target,
                         f"{top['characters_per_second']:,} chars/s with {top['threads']} thread(s) = "
                         f"{top['characters_per_second'] / streams_target:.2f} x the {streams_target:,} target")
    if accuracy is not None and "float32" in accuracy["loss_nats"]:
        for name, difference in accuracy["minus_float32"].items():
            if name != "float32":
                verdicts.add(f"{name} accuracy", difference <= ACCURACY_SLACK_NATS,
                             f"{accuracy['loss_nats'][name]:.5f} nats/character against float32's "
                             f"{accuracy['loss_nats']['float32']:.5f} ({difference:+.5f}; target <= "
                             f"+{ACCURACY_SLACK_NATS}) on {accuracy['characters']:,} characters of "
                             f"{accuracy['source']}")
    elif accuracy is None:
        verdicts.add("accuracy", None, f"skipped: no {DATA / 'tinyshakespeare.txt'} and no --accuracy-run")
    if memory_rows:
        growth = memory_rows[-1]["growth_mb"]
        verdicts.add("flat memory", growth < FLAT_MEMORY_SLACK_MB,
                     f"streaming {memory_rows[-1]['characters']:,} characters grew RSS by {growth:+.2f} MB "
                     f"(flat: < {FLAT_MEMORY_SLACK_MB} MB)")
    return verdicts


def main(argv=None) -> int:
    """Run the benchmark; the exit status is 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, threads=[1, 2], rounds=3)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16", "int8"], choices=sorted(DTYPES),
                        help="precisions to measure (default: float32 bfloat16 int8)")
    parser.add_argument("--cli-lengths", type=positive_int, nargs=2, default=[2_000, 50_000], metavar="N",
                        help="the two lengths of the command-line runs (default: 2000 50000: a start-up "
                             "varies by half a second, which the longer run must dwarf)")
    parser.add_argument("--characters", type=positive_int, default=20_000,
                        help="characters per round in process (default: 20000)")
    parser.add_argument("--reference-characters", type=positive_int, default=2_000,
                        help="characters per round, the naive loop (default: 2000)")
    parser.add_argument("--streams", type=positive_int, nargs="*", default=[16, 64],
                        help="numbers of samples made together to measure (none: skip)")
    parser.add_argument("--accuracy-run", type=Path, metavar="RUN_DIR",
                        help="a trained run whose validation split the accuracy check reads "
                             "(default: the pretrained shakespeare model on tinyshakespeare)")
    parser.add_argument("--accuracy-characters", type=positive_int, default=20_000)
    parser.add_argument("--memory-lengths", type=positive_int, nargs=2, default=[10_000, 100_000])
    args = parser.parse_args(argv)
    if "float32" not in args.dtypes:
        args.dtypes = ["float32"] + args.dtypes  # the reference of every ratio

    ours, reference, config = build_models()
    header = print_machine_header(threads=args.threads)
    print(f"sampling a {NUM_LAYERS}x{HIDDEN_SIZE} LSTM (V={VOCABULARY.size}, E={EMBEDDING_SIZE}), "
          "interleaved rounds, each rate the best round", flush=True)
    cli_rows, process_rows, stream_rows = [], [], []
    with tempfile.TemporaryDirectory(prefix="charrnn-bench-sample-") as folder:
        checkpoint = save_checkpoint(Path(folder) / "model", ours, VOCABULARY, config)
        for threads in args.threads:
            torch.set_num_threads(threads)
            cli_rows += measure_cli(checkpoint, args, threads)
            process_rows += measure_in_process(ours, reference, args, threads)
            stream_rows += measure_streams(ours, args, threads)
    torch.set_num_threads(min(args.threads))
    accuracy = measure_accuracy(args)
    memory_rows = measure_memory(ours, args.memory_lengths)
    for row in memory_rows:
        print(f"memory: {row['characters']:>7,} characters: RSS {row['rss_before_mb']:.1f} -> "
              f"{row['rss_after_mb']:.1f} MB (growth {row['growth_mb']:+.2f} MB)")
    print(f"load average now: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)

    verdicts = judge(cli_rows, process_rows, stream_rows, accuracy, memory_rows, args.dtypes)
    write_results({"benchmark": "sample", "machine": header,
                   "model": {"cell": "lstm", "hidden_size": HIDDEN_SIZE, "num_layers": NUM_LAYERS,
                             "embedding_size": EMBEDDING_SIZE, "vocab_size": VOCABULARY.size},
                   "targets": {"cli_characters_per_second": TARGET_CLI_CHARACTERS_PER_SECOND,
                               "streams_characters_per_second": TARGET_STREAMS_CHARACTERS_PER_SECOND,
                               "accuracy_slack_nats": ACCURACY_SLACK_NATS},
                   "cli": cli_rows, "in_process": process_rows, "streams": stream_rows, "accuracy": accuracy,
                   "memory": memory_rows, "verdicts": verdicts.records()},
                  results_path("sample", args.results))
    return verdicts.finish()


if __name__ == "__main__":
    sys.exit(main())
