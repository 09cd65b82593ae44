"""Benchmark: the lecture's examples on charrnn against TensorFlow 2.15 measured in the same run.

Usage::

    python bench/bench_lecture.py [--rounds 5] [--tf-python PATH] [--outcome-seeds 0 1 2]
                                  [--skip-paths] [--results FILE]

Three parts, all on ONE thread (``torch.set_num_threads(1)``, as ``charrnn lecture`` runs; the
TensorFlow session gets ``intra_op = inter_op = 1``):

1. Lecture examples. Each example of :data:`charrnn.lecture.EXAMPLES` whole (set-up included),
   and for the training examples their training loop alone (:func:`charrnn.lecture.fit`), beside
   ``bench/tf_reference.py``'s loop (the lecture's TensorFlow 1 program under
   ``tf.compat.v1``). TensorFlow runs in a child process (``tf_reference.py --serve``) that
   answers one program at a time, so each program runs on both sides back to back, the order
   alternating from round to round: both see the same load. Medians of ``--rounds`` rounds;
   the ratio is TF / charrnn (the target is at least 2x). Wall-clock seconds, process CPU
   seconds (which a loaded machine disturbs less), and the ratio of the fastest rounds.
2. What TensorFlow's lecture programs reach (final loss, prediction, first correct iteration),
   run as the lecture writes them for each ``--outcome-seeds`` value, beside charrnn's verdicts.
3. The fused vs step paths of :func:`charrnn.unroll.dynamic_rnn`: forward + backward + Adam per
   iteration, for the lecture's shapes and a bigger one (reported, no target).

The verdict is one line per training example, TF / charrnn >= 2x, and the exit status is 1 when
one misses. Without a Python that has TensorFlow (``--tf-python``; by default
``/work/tfvenv/bin/python`` or this Python, whichever imports it) there is nothing to compare
with: charrnn's own figures are reported, with "no verdict: TensorFlow is not installed", and
the exit status is 0. Results go to ``bench/results/lecture-<time>.json`` (or ``--results``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from charrnn.cells import BasicLSTMCell, MultiRNNCell, make_cell
from charrnn.layers import Dense
from charrnn.lecture import (EXAMPLES, LONG_SENTENCE, LONG_SEQUENCE, LectureModel, LectureOptions,
                             fit)
from charrnn.losses import sequence_loss
from charrnn.optim import make_optimizer
from charrnn.unroll import dynamic_rnn
from charrnn.vocabulary import Vocabulary, one_hot
from charrnn.windows import sliding_windows

from common import (Verdicts, add_common_arguments, interleaved, print_machine_header, results_path, timed,
                    write_results)

HERE = Path(__file__).resolve().parent
TF_REFERENCE = HERE / "tf_reference.py"
DEFAULT_TF_PYTHON = Path("/work/tfvenv/bin/python")
TARGET_SPEEDUP = 2.0
# Training programs timed on both sides: charrnn's example (and option) -> tf_reference.py's program.
TRAINING = {"hihello": "hihello", "hihello --dense": "hihello-dense", "long-sequence": "long-sequence",
            "long-sentence": "long-sentence"}


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


def seconds(function) -> dict:
    """Wall-clock and process CPU seconds of ``function()``."""
    timing = timed(function)
    return {"wall": timing.wall, "cpu": timing.cpu}


def time_charrnn_examples() -> dict:
    """Every lecture example whole (set-up and verdict included), as ``charrnn lecture`` runs it."""
    results = {name: seconds(lambda: example(LectureOptions(every=10**9), quiet))
               for name, example in EXAMPLES.items()}
    results["hihello --dense"] = seconds(lambda: EXAMPLES["hihello"](LectureOptions(every=10**9, dense=True), quiet))
    return results


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


def time_paths(shape: tuple, rounds: int) -> dict:
    """Median ms per iteration of the fused and the step path, measured in alternation."""
    iterations = shape[-1]
    runs = {"fused": path_iteration(shape, None), "step": path_iteration(shape, False)}
    for run in runs.values():
        for _ in range(max(2, iterations // 20)):
            run()  # warm-up: oneDNN builds its primitives on first use
    timings = interleaved({path: lambda run=run: [run() for _ in range(iterations)] for path, run in runs.items()},
                          rounds)
    return {path: {"wall_ms": statistics.median(t.wall for t in samples) * 1e3 / iterations,
                   "cpu_ms": statistics.median(t.cpu for t in samples) * 1e3 / iterations}
            for path, samples in timings.items()}


def compare_paths(rounds: int) -> dict:
    """Print and return the fused vs step table."""
    print(f"\nfused vs step paths, forward + backward + TF Adam, ms per iteration (median of {rounds})")
    print(f"{'shape':<44} {'fused ms':>9} {'cpu':>7} {'step ms':>9} {'cpu':>7} {'step/fused':>11} {'cpu':>6}")
    results = {}
    for name, shape in SHAPES.items():
        result = results[name] = time_paths(shape, rounds)
        fused, step = result["fused"], result["step"]
        print(f"{name:<44} {fused['wall_ms']:9.3f} {fused['cpu_ms']:7.3f} {step['wall_ms']:9.3f} "
              f"{step['cpu_ms']:7.3f} {ratio_text(step['wall_ms'], fused['wall_ms']):>11} "
              f"{ratio_text(step['cpu_ms'], fused['cpu_ms']):>6}")
    return results


# -- the rounds -----------------------------------------------------------------------------------------
def run_rounds(rounds: int, server: TFServer | None) -> dict:
    """``rounds`` rounds: the examples whole, then each training program on charrnn's side and on
    TensorFlow's back to back, the order reversing every other round. Returns the timings."""
    candidates = {"examples": time_charrnn_examples}
    for name, program in TRAINING.items():
        # The loop alone, without building its model: it times itself (as TensorFlow's does).
        candidates[f"loop {name}"] = lambda name=name: seconds(lecture_loop(name))
        if server is not None:
            candidates[f"tf {program}"] = lambda program=program: server.time(program)
    return interleaved(candidates, rounds, alternate=True)


def summarise(timings: dict) -> dict:
    """One row per example: medians of both sides, their ratios, and the fastest rounds' ratio."""
    def median(key, field):
        return statistics.median(t.result[field] for t in timings[key])

    rows = {}
    for name in [*EXAMPLES, "hihello --dense"]:
        row = rows[name] = {"charrnn_example_seconds": statistics.median(
            t.result[name]["wall"] for t in timings["examples"])}
        if name not in TRAINING:
            continue
        row["charrnn_loop_seconds"] = median(f"loop {name}", "wall")
        row["charrnn_loop_cpu_seconds"] = median(f"loop {name}", "cpu")
        tf_key = f"tf {TRAINING[name]}"
        if tf_key in timings:
            for field in ("loop_seconds", "loop_cpu_seconds", "first_iteration_seconds"):
                row[f"tf_{field}"] = median(tf_key, field)
            row["speedup"] = row["tf_loop_seconds"] / row["charrnn_loop_seconds"]
            row["speedup_cpu"] = row["tf_loop_cpu_seconds"] / row["charrnn_loop_cpu_seconds"]
            row["speedup_fastest_rounds"] = (min(t.result["loop_seconds"] for t in timings[tf_key])
                                             / min(t.result["wall"] for t in timings[f"loop {name}"]))
    return rows


# -- report ---------------------------------------------------------------------------------------------
def ratio_text(reference: float | None, ours: float | None) -> str:
    """``reference / ours`` as ``'2.31x'``, or ``'-'``."""
    return "-" if reference is None or not ours else f"{reference / ours:.2f}x"


def print_lecture_table(rows: dict) -> None:
    """The main table: each example, charrnn's seconds, TensorFlow's (when measured), TF / charrnn."""
    def cell(value, width):
        return f"{'-':>{width}}" if value is None else f"{value:{width}.3f}"

    def times(value, width):
        return f"{'-':>{width}}" if value is None else f"{value:{width - 1}.2f}x"

    print(f"\n{'example':<16} {'charrnn':>8} | {'loop s':>7} {'cpu s':>6} | {'TF loop s':>9} {'cpu s':>6} "
          f"{'1st it':>6} | {'TF/charrnn':>10} {'cpu':>6} {'fastest':>8}")
    for name, row in rows.items():
        print(f"{name:<16} {row['charrnn_example_seconds']:8.3f} | "
              f"{cell(row.get('charrnn_loop_seconds'), 7)} "
              f"{cell(row.get('charrnn_loop_cpu_seconds'), 6)} | {cell(row.get('tf_loop_seconds'), 9)} "
              f"{cell(row.get('tf_loop_cpu_seconds'), 6)} {cell(row.get('tf_first_iteration_seconds'), 6)} | "
              f"{times(row.get('speedup'), 10)} {times(row.get('speedup_cpu'), 6)} "
              f"{times(row.get('speedup_fastest_rounds'), 8)}")
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


def find_tf_python() -> Path | None:
    """A Python that imports TensorFlow: ``/work/tfvenv/bin/python``, or this one; None without."""
    for candidate in (DEFAULT_TF_PYTHON, Path(sys.executable)):
        if tf_python_available(candidate):
            return candidate
    return None


def start_tf_server(tf_python: Path) -> TFServer:
    """The TensorFlow reference, warmed up (raises RuntimeError when it fails)."""
    try:
        server = TFServer(tf_python)
        for program in TRAINING.values():
            server.time(program)  # warm-up, as charrnn's
    except (json.JSONDecodeError, KeyError) as error:
        raise RuntimeError(f"{TF_REFERENCE.name} --serve answered badly: {error}") from error
    print(f"TensorFlow reference: {tf_python} {TF_REFERENCE.name} (TensorFlow {server.version}), "
          "measured in this run", flush=True)
    return server


def judge(verdicts: Verdicts, rows: dict) -> None:
    """One verdict per training example: TF / charrnn on the loop's median wall clock."""
    for name, row in rows.items():
        if "speedup" in row:
            verdicts.add(f"{name} speed-up", row["speedup"] >= TARGET_SPEEDUP,
                         f"TF loop {row['tf_loop_seconds']:.3f} s / charrnn loop {row['charrnn_loop_seconds']:.3f} s "
                         f"= {row['speedup']:.2f}x (CPU time {row['speedup_cpu']:.2f}x, fastest rounds "
                         f"{row['speedup_fastest_rounds']:.2f}x; target >= {TARGET_SPEEDUP:g}x)")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables; the exit status is 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, rounds=5)
    parser.add_argument("--tf-python", type=Path,
                        help=f"a Python with TensorFlow 2.15 (default: {DEFAULT_TF_PYTHON} or this Python, "
                             "whichever imports tensorflow)")
    parser.add_argument("--outcome-seeds", type=int, nargs="*", default=[0, 1, 2],
                        help="seeds for TensorFlow's as-written outcome check (none: skip it)")
    parser.add_argument("--skip-paths", action="store_true", help="skip the fused vs step part")
    args = parser.parse_args(argv)
    if args.tf_python is not None and not tf_python_available(args.tf_python):
        parser.error(f"--tf-python {args.tf_python} cannot import tensorflow")
    tf_python = args.tf_python or find_tf_python()

    torch.set_num_threads(1)
    header = print_machine_header()
    for name in EXAMPLES:  # warm-up: imports, oneDNN primitives, scikit-learn, outside the rounds
        EXAMPLES[name](LectureOptions(every=10**9, iterations=3), quiet)
    verdicts, server, tensorflow = Verdicts(), None, None
    if tf_python is None:
        print("TensorFlow is not installed: charrnn's own figures only", flush=True)
    else:
        try:
            server = start_tf_server(tf_python)
        except RuntimeError as error:
            verdicts.add("TensorFlow reference", False, f"{tf_python} {TF_REFERENCE.name} failed: {error}")
    try:
        timings = run_rounds(args.rounds, server)
    finally:
        if server is not None:
            tensorflow = server.version
            server.close()

    report = {"benchmark": "lecture", "machine": header, "tensorflow": tensorflow,
              "lecture": summarise(timings),
              "rounds": {key: [t.result for t in samples] for key, samples in timings.items()}}
    print_lecture_table(report["lecture"])
    if server is not None and args.outcome_seeds:
        report["tf_outcomes"] = run_tf_reference(tf_python, [
            "--check-outcomes", "--programs", "hihello", "long-sequence", "long-sentence",
            "--seeds", *map(str, args.outcome_seeds)])["outcomes"]
        charrnn_results = {name: EXAMPLES[name](LectureOptions(every=10**9), quiet)
                           for name in ("hihello", "long-sequence", "long-sentence")}
        charrnn_results["hihello --dense"] = EXAMPLES["hihello"](
            LectureOptions(every=10**9, dense=True), quiet)
        print_outcomes(report["tf_outcomes"], charrnn_results)
    if not args.skip_paths:
        report["paths"] = compare_paths(args.rounds)
    print()
    if tf_python is None:
        verdicts.add("TF / charrnn", None, "no verdict: TensorFlow is not installed (give --tf-python, "
                     "or see bench/README_lecture.md to install it)")
    judge(verdicts, report["lecture"])
    if "paths" in report:
        verdicts.add("fused vs step", None, "step / fused wall time " + ", ".join(
            ratio_text(row["step"]["wall_ms"], row["fused"]["wall_ms"]) for row in report["paths"].values())
            + " (the shapes above)")
    report["verdicts"] = verdicts.records()
    write_results(report, results_path("lecture", args.results))
    return verdicts.finish()


if __name__ == "__main__":
    sys.exit(main())
