"""Benchmark: the lecture's examples on charrnn against TensorFlow 2.15 measured in the same run.

Usage::

    python bench/bench_lecture.py [--repeats 5] [--tf-python PATH] [--outcome-seeds 0 1 2]
                                  [--skip-paths] [--json FILE]

Three parts, all on ONE thread (``torch.set_num_threads(1)``, as ``charrnn lecture`` runs; the
TensorFlow session gets ``intra_op = inter_op = 1``):

1. Lecture examples. Each example of :data:`charrnn.lecture.EXAMPLES` whole (set-up included),
   and for the training examples their training loop alone (:func:`charrnn.lecture.fit`), beside
   ``bench/tf_reference.py``'s loop (the lecture's TensorFlow 1 program under
   ``tf.compat.v1``). TensorFlow runs in a child process (``tf_reference.py --serve``) that
   answers one program at a time, so each program runs on both sides back to back, the order
   alternating from round to round: both see the same load. Medians of ``--repeats`` rounds;
   the ratio is TF / charrnn (the target is at least 2x). Wall-clock seconds, process CPU
   seconds (which a loaded machine disturbs less), and the ratio of the fastest rounds.
2. What TensorFlow's lecture programs reach (final loss, prediction, first correct iteration),
   run as the lecture writes them for each ``--outcome-seeds`` value, beside charrnn's verdicts.
3. The fused vs step paths of :func:`charrnn.unroll.dynamic_rnn`: forward + backward + Adam per
   iteration, for the lecture's shapes and a bigger one.

Without a Python that has TensorFlow (``--tf-python``, default ``/work/tfvenv/bin/python``), the
issue's documented figures stand in (2 s for hihello, 5 s for long-sentence), labelled as not
measured in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from charrnn.cells import BasicLSTMCell, MultiRNNCell, make_cell
from charrnn.files import write_json
from charrnn.layers import Dense
from charrnn.lecture import (EXAMPLES, LONG_SENTENCE, LONG_SEQUENCE, LectureModel, LectureOptions,
                             fit)
from charrnn.losses import sequence_loss
from charrnn.optim import make_optimizer
from charrnn.unroll import dynamic_rnn
from charrnn.vocabulary import Vocabulary, one_hot
from charrnn.windows import sliding_windows

HERE = Path(__file__).resolve().parent
TF_REFERENCE = HERE / "tf_reference.py"
DEFAULT_TF_PYTHON = Path("/work/tfvenv/bin/python")
# The figures for TensorFlow 2.15, compat.v1 graph mode, one thread, "on these machines".
DOCUMENTED_TF_SECONDS = {"hihello": 2.0, "long-sentence": 5.0}
TARGET_SPEEDUP = 2.0
# Training programs timed on both sides: charrnn's example (and option) -> tf_reference.py's program.
TRAINING = {"hihello": "hihello", "hihello --dense": "hihello-dense", "long-sequence": "long-sequence",
            "long-sentence": "long-sentence"}


def timed(function):
    """Run ``function()``; return ``(result, wall seconds, CPU seconds)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def quiet(_line: str) -> None:
    """A ``say`` that prints nothing."""


# -- charrnn: the training loops alone -------------------------------------------------------------
def lecture_loop(name: str, seed: int = 0):
    """The model, data and iteration count of a training example, set up as the lecture does.

    Returns a function that runs :func:`fit` (no printing) and returns ``(loss, prediction)``.
    """
    torch.manual_seed(seed)
    if name.startswith("hihello"):
        x_one_hot = one_hot(torch.tensor([[0, 1, 0, 2, 3, 3]]), 5)  # (1, 6, 5) hihell
        targets = torch.tensor([[1, 0, 2, 3, 3, 4]])  # ihello
        model = LectureModel(BasicLSTMCell(5), 5, 5 if name.endswith("--dense") else None)
        iterations = 2000
    elif name == "long-sequence":
        vocabulary = Vocabulary.from_text(LONG_SEQUENCE)
        ids = torch.from_numpy(vocabulary.encode(LONG_SEQUENCE))
        x_one_hot = one_hot(ids[:-1].unsqueeze(0), vocabulary.size)  # (1, 15, 10)
        targets = ids[1:].unsqueeze(0)
        model = LectureModel(BasicLSTMCell(vocabulary.size), vocabulary.size, vocabulary.size)
        iterations = 50
    elif name == "long-sentence":
        vocabulary = Vocabulary.from_text(LONG_SENTENCE)
        x_windows, targets = sliding_windows(vocabulary.encode(LONG_SENTENCE), 10)  # (170, 10)
        x_one_hot = one_hot(x_windows, vocabulary.size)  # (170, 10, 25)
        cell = MultiRNNCell([BasicLSTMCell(vocabulary.size) for _ in range(2)])
        model = LectureModel(cell, vocabulary.size, vocabulary.size)
        iterations = 500
    else:
        raise ValueError(f"no training loop named {name!r}")
    return lambda: fit(model, x_one_hot, targets, iterations, 0.1, "tf-adam", 0, str, quiet)


def time_charrnn_examples() -> dict:
    """Every lecture example whole (set-up and verdict included), as ``charrnn lecture`` runs it."""
    results = {}
    for name, example in EXAMPLES.items():
        _, wall, cpu = timed(lambda: example(LectureOptions(every=10**9), quiet))
        results[f"example {name}"] = {"wall": wall, "cpu": cpu}
    _, wall, cpu = timed(lambda: EXAMPLES["hihello"](LectureOptions(every=10**9, dense=True), quiet))
    results["example hihello --dense"] = {"wall": wall, "cpu": cpu}
    return results


def time_charrnn_loop(name: str) -> dict:
    """Wall and CPU seconds of one training loop from a fresh model."""
    _, wall, cpu = timed(lecture_loop(name))
    return {"wall": wall, "cpu": cpu}


# -- TensorFlow: the reference in a child process -------------------------------------------------
def _tf_environment() -> dict:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")


def run_tf_reference(tf_python: Path, arguments: list[str], timeout: float = 1800) -> dict:
    """Run ``tf_reference.py`` under ``tf_python``; its JSON report (raises RuntimeError on failure)."""
    process = subprocess.run([str(tf_python), str(TF_REFERENCE), *arguments], capture_output=True,
                             text=True, timeout=timeout, env=_tf_environment())
    if process.returncode != 0:
        raise RuntimeError(f"{tf_python} {TF_REFERENCE.name} failed ({process.returncode}): "
                           f"{process.stderr.strip()[-2000:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])


class TFServer:
    """``tf_reference.py --serve`` in a child process: TensorFlow imported once, runs on request.

    Asking it for one program at a time lets the benchmark alternate TensorFlow's run of a
    program with charrnn's, seconds apart, so that both see the same load.
    """

    def __init__(self, tf_python: Path):
        self.process = subprocess.Popen([str(tf_python), str(TF_REFERENCE), "--serve"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=_tf_environment())
        self.version = self._reply()["tensorflow"]

    def _reply(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            raise RuntimeError(f"{TF_REFERENCE.name} --serve stopped ({self.process.returncode}): "
                               f"{self.process.stderr.read().strip()[-2000:]}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{TF_REFERENCE.name}: {reply['error']}")
        return reply

    def time(self, program: str, seed: int = 0) -> dict:
        """TensorFlow's timing of ``program`` (build, then the training loop)."""
        self.process.stdin.write(json.dumps({"program": program, "seed": seed}) + "\n")
        self.process.stdin.flush()
        return self._reply()

    def close(self) -> None:
        """End the child."""
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


def tf_python_available(path: Path | None) -> bool:
    """Whether ``path`` is a Python that imports TensorFlow."""
    if path is None or not path.exists():
        return False
    probe = subprocess.run([str(path), "-c", "import tensorflow"], capture_output=True,
                           env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    return probe.returncode == 0


# -- the fused and step paths -----------------------------------------------------------------------
SHAPES = {
    # name: (batch, steps, input depth, hidden size, layers, dense classes or None, iterations)
    "hihello 1x6x5, LSTM(5)": (1, 6, 5, 5, 1, None, 400),
    "long-sentence 170x10x25, 2xLSTM(25)+dense": (170, 10, 25, 25, 2, 25, 60),
    "bigger 32x64x65, 2xLSTM(256)+dense": (32, 64, 65, 256, 2, 65, 6),
}


def path_iteration(shape: tuple, fused: bool | None):
    """One forward + backward + TF-Adam iteration on a fresh model of ``shape``, as a function."""
    batch, steps, depth, hidden_size, num_layers, classes, _ = shape
    torch.manual_seed(0)
    cells = [make_cell("lstm", hidden_size, depth if layer == 0 else hidden_size)
             for layer in range(num_layers)]
    cell = cells[0] if num_layers == 1 else MultiRNNCell(cells)
    dense = Dense(classes, input_size=hidden_size) if classes else None
    parameters = list(cell.parameters()) + (list(dense.parameters()) if dense else [])
    optimizer = make_optimizer("tf-adam", parameters, 0.1)
    inputs = one_hot(torch.randint(0, depth, (batch, steps)), depth)  # (B, T, D)
    targets = torch.randint(0, classes or hidden_size, (batch, steps))  # (B, T)

    def iteration():
        outputs, _ = dynamic_rnn(cell, inputs, fused=fused)  # (B, T, N)
        logits = dense(outputs) if dense else outputs  # (B, T, C)
        loss = sequence_loss(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return iteration


def time_paths(shape: tuple, repeats: int) -> dict:
    """Median ms per iteration of the fused and the step path, measured in alternation."""
    iterations = shape[-1]
    runs = {"fused": path_iteration(shape, None), "step": path_iteration(shape, False)}
    for run in runs.values():
        for _ in range(max(2, iterations // 20)):
            run()  # warm-up: oneDNN builds its primitives on first use
    samples = {path: {"wall_ms": [], "cpu_ms": []} for path in runs}
    for _ in range(repeats):
        for path, run in runs.items():
            _, wall, cpu = timed(lambda: [run() for _ in range(iterations)])
            samples[path]["wall_ms"].append(wall * 1e3 / iterations)
            samples[path]["cpu_ms"].append(cpu * 1e3 / iterations)
    return {path: {field: statistics.median(values) for field, values in fields.items()}
            for path, fields in samples.items()}


def compare_paths(repeats: int) -> dict:
    """Print and return the fused vs step table."""
    print(f"\nfused vs step paths, forward + backward + TF Adam, ms per iteration (median of {repeats})")
    print(f"{'shape':<44} {'fused ms':>9} {'cpu':>7} {'step ms':>9} {'cpu':>7} {'step/fused':>11} {'cpu':>6}")
    results = {}
    for name, shape in SHAPES.items():
        result = results[name] = time_paths(shape, repeats)
        fused, step = result["fused"], result["step"]
        print(f"{name:<44} {fused['wall_ms']:9.3f} {fused['cpu_ms']:7.3f} {step['wall_ms']:9.3f} "
              f"{step['cpu_ms']:7.3f} {ratio_text(step['wall_ms'], fused['wall_ms']):>11} "
              f"{ratio_text(step['cpu_ms'], fused['cpu_ms']):>6}")
    return results


# -- report ---------------------------------------------------------------------------------------------
def median_of(rounds: list[dict], key: str, field: str) -> float:
    """Median of ``rounds[i][key][field]``."""
    return statistics.median(round_[key][field] for round_ in rounds)


def ratio_text(reference: float | None, ours: float | None) -> str:
    """``reference / ours`` as ``'2.31x'``, or ``'-'``."""
    return "-" if reference is None or not ours else f"{reference / ours:.2f}x"


def summarise(charrnn_rounds: list[dict], tf_rounds: list[dict], measured: bool) -> dict:
    """One row per example: medians of both sides, their ratios, and the fastest rounds' ratio."""
    rows = {}
    for name in [*EXAMPLES, "hihello --dense"]:
        row = {"charrnn_example_seconds": median_of(charrnn_rounds, f"example {name}", "wall")}
        program = TRAINING.get(name)
        if program is not None:
            row["charrnn_loop_seconds"] = median_of(charrnn_rounds, f"loop {name}", "wall")
            row["charrnn_loop_cpu_seconds"] = median_of(charrnn_rounds, f"loop {name}", "cpu")
            fastest = min(round_[f"loop {name}"]["wall"] for round_ in charrnn_rounds)
            if measured:
                for field in ("loop_seconds", "loop_cpu_seconds", "first_iteration_seconds"):
                    row[f"tf_{field}"] = statistics.median(r[program][field] for r in tf_rounds)
                tf_fastest = min(r[program]["loop_seconds"] for r in tf_rounds)
            else:
                row["tf_loop_seconds"] = tf_fastest = DOCUMENTED_TF_SECONDS.get(program)
            if row["tf_loop_seconds"] is not None:
                row["speedup"] = row["tf_loop_seconds"] / row["charrnn_loop_seconds"]
                row["speedup_fastest_rounds"] = tf_fastest / fastest
            if row.get("tf_loop_cpu_seconds") is not None:
                row["speedup_cpu"] = row["tf_loop_cpu_seconds"] / row["charrnn_loop_cpu_seconds"]
        rows[name] = row
    return rows


def print_lecture_table(rows: dict, measured: bool) -> None:
    """The main table: each example, charrnn's seconds, TensorFlow's, and TF / charrnn."""
    def cell(value, width):
        return f"{'-':>{width}}" if value is None else f"{value:{width}.3f}"

    def times(value, width):
        return f"{'-':>{width}}" if value is None else f"{value:{width - 1}.2f}x"

    print(f"\n{'example':<16} {'charrnn':>8} | {'loop s':>7} {'cpu s':>6} | {'TF loop s':>9} {'cpu s':>6} "
          f"{'1st it':>6} | {'TF/charrnn':>10} {'cpu':>6} {'fastest':>8}  target >= {TARGET_SPEEDUP:g}x")
    for name, row in rows.items():
        speedup = row.get("speedup")
        verdict = "" if speedup is None else ("yes" if speedup >= TARGET_SPEEDUP else "NO")
        if speedup is not None and not measured:
            verdict += " (TF: the issue's figure, NOT measured in this run)"
        print(f"{name:<16} {row['charrnn_example_seconds']:8.3f} | "
              f"{cell(row.get('charrnn_loop_seconds'), 7)} "
              f"{cell(row.get('charrnn_loop_cpu_seconds'), 6)} | {cell(row.get('tf_loop_seconds'), 9)} "
              f"{cell(row.get('tf_loop_cpu_seconds'), 6)} {cell(row.get('tf_first_iteration_seconds'), 6)} | "
              f"{times(speedup, 10)} {times(row.get('speedup_cpu'), 6)} "
              f"{times(row.get('speedup_fastest_rounds'), 8)}  {verdict}")
    print("charrnn: the whole example (median wall s); loop: its training loop alone; TF loop: the "
          "lecture's program's loop (its 1st iteration also optimises the graph); fastest: the ratio "
          "of the fastest rounds")


def print_outcomes(outcomes: dict, charrnn_results: dict) -> None:
    """What TensorFlow's programs reached, seed by seed, beside charrnn's verdicts."""
    print("\nTensorFlow's lecture programs as written (train, then predict, each iteration; "
          "long-sentence's target excludes its first character):")
    for program, runs in outcomes.items():
        for run in runs:
            first = run["first_correct_iteration"]
            shown = run["prediction"][:24] + ("..." if len(run["prediction"]) > 24 else "")
            print(f"  {program:<14} seed {run['seed']}: final loss {run['final_loss']:.4g}, "
                  f"predicts {shown!r} "
                  f"({'reaches' if run['correct'] else 'MISSES'} the target; differs at "
                  f"{run['differing_positions'] or 'none'}), first reached at iteration {first}")
    print("charrnn (seed 0, TF Adam):")
    for name, result in charrnn_results.items():
        print(f"  {name:<16} {'PASS' if result.passed else 'FAIL'} - {result.verdict}")


def run_rounds(repeats: int, server: TFServer | None) -> tuple[list[dict], list[dict]]:
    """``repeats`` rounds: the examples whole, then each training program on both sides in turn."""
    charrnn_rounds, tf_rounds = [], []
    for round_index in range(repeats):
        charrnn_round, tf_round = time_charrnn_examples(), {}
        for name, program in TRAINING.items():
            # Each program back to back on both sides, the order alternating from round to round.
            if server is not None and round_index % 2 == 0:
                tf_round[program] = server.time(program)
            charrnn_round[f"loop {name}"] = time_charrnn_loop(name)
            if server is not None and round_index % 2 == 1:
                tf_round[program] = server.time(program)
        charrnn_rounds.append(charrnn_round)
        if server is not None:
            tf_rounds.append(tf_round)
        print(f"round {round_index + 1}/{repeats} done", flush=True)
    return charrnn_rounds, tf_rounds


def start_tf_server(tf_python: Path | None) -> TFServer | None:
    """The TensorFlow reference, warmed up; None (with the reason printed) when unavailable."""
    documented = ", ".join(f"{name} {seconds:g} s" for name, seconds in DOCUMENTED_TF_SECONDS.items())
    fallback = f"using the issue's documented figures ({documented}), NOT measured in this run"
    if not tf_python_available(tf_python):
        print(f"TensorFlow reference unavailable ({tf_python or 'no --tf-python'}): {fallback}")
        return None
    try:
        server = TFServer(tf_python)
        for program in TRAINING.values():
            server.time(program)  # warm-up, as charrnn's
    except (RuntimeError, json.JSONDecodeError, KeyError) as error:
        print(f"TensorFlow reference failed ({error}): {fallback}")
        return None
    print(f"TensorFlow reference: {tf_python} {TF_REFERENCE.name} (TensorFlow {server.version}), "
          "measured in this run")
    return server


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="rounds per measurement (median; default 5)")
    parser.add_argument("--tf-python", type=Path,
                        default=DEFAULT_TF_PYTHON if DEFAULT_TF_PYTHON.exists() else None,
                        help=f"a Python with TensorFlow 2.15 (default {DEFAULT_TF_PYTHON} if it exists)")
    parser.add_argument("--outcome-seeds", type=int, nargs="*", default=[0, 1, 2],
                        help="seeds for TensorFlow's as-written outcome check (none: skip it)")
    parser.add_argument("--skip-paths", action="store_true", help="skip the fused vs step part")
    parser.add_argument("--json", type=Path, help="also write every measurement to this JSON file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")

    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread; {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for name in EXAMPLES:  # warm-up: imports, oneDNN primitives, scikit-learn, outside the rounds
        EXAMPLES[name](LectureOptions(every=10**9, iterations=3), quiet)
    server = start_tf_server(args.tf_python)
    measured = server is not None
    try:
        charrnn_rounds, tf_rounds = run_rounds(args.repeats, server)
    finally:
        if server is not None:
            server.close()

    report = {"tensorflow": server.version if measured else None,
              "lecture": summarise(charrnn_rounds, tf_rounds, measured),
              "charrnn_rounds": charrnn_rounds, "tf_rounds": tf_rounds}
    print_lecture_table(report["lecture"], measured)
    if measured and args.outcome_seeds:
        report["tf_outcomes"] = run_tf_reference(args.tf_python, [
            "--check-outcomes", "--programs", "hihello", "long-sequence", "long-sentence",
            "--seeds", *map(str, args.outcome_seeds)])["outcomes"]
        charrnn_results = {name: EXAMPLES[name](LectureOptions(every=10**9), quiet)
                           for name in ("hihello", "long-sequence", "long-sentence")}
        charrnn_results["hihello --dense"] = EXAMPLES["hihello"](
            LectureOptions(every=10**9, dense=True), quiet)
        print_outcomes(report["tf_outcomes"], charrnn_results)
    if not args.skip_paths:
        report["paths"] = compare_paths(args.repeats)
    if args.json:
        write_json(args.json, report)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
