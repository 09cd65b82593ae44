"""``charrnn lecture [NAME ...]``: run the lecture's examples with the lecture's outcomes."""

from __future__ import annotations


from charrnn.cells import CELL_TYPES
from charrnn.checks import positive_int
from charrnn.errors import CharRNNError
from charrnn.lecture import EXAMPLES, LectureOptions, run_lecture


def add_parser(subparsers) -> None:
    """Register ``charrnn lecture``."""
    parser = subparsers.add_parser(
        "lecture", help="run the RNN lecture's examples",
        description=f"Run the lecture's examples ({', '.join(EXAMPLES)}; none named means all). "
                    "Each ends with a verdict line; the exit status is 1 if any fails.")
    parser.add_argument("names", nargs="*", metavar="NAME", help="examples to run")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--every", type=positive_int, help="print every N iterations")
    parser.add_argument("--iterations", type=positive_int, help="override the lecture's iteration count")
    parser.add_argument("--cell", choices=sorted(CELL_TYPES),
                        help="swap the lecture's cell (RNN for the shape examples, LSTM for training)")
    parser.add_argument("--dense", action="store_true",
                        help="hihello: add a dense layer on the LSTM outputs (the lecture's 1.58e-05 loss)")
    parser.add_argument("--optimizer", choices=["tf-adam", "adam"], default="tf-adam",
                        help="TensorFlow 1's Adam (default) or PyTorch's")
    parser.add_argument("--kfold", choices=["current", "sklearn-0.19"], default="current",
                        help="stratified: today's StratifiedKFold, or scikit-learn 0.19's folds as the lecture printed")
    parser.set_defaults(run=run)


def run(args) -> int:
    """Run the examples; 0 when every verdict passes, 1 otherwise."""
    unknown = [name for name in args.names if name not in EXAMPLES]
    if unknown:
        raise CharRNNError(f"unknown example {unknown[0]!r}; expected one of: {', '.join(EXAMPLES)}")
    options = LectureOptions(seed=args.seed, every=args.every, cell=args.cell, dense=args.dense,
                             iterations=args.iterations, optimizer=args.optimizer, kfold=args.kfold)
    results = run_lecture(args.names, options, lambda line: print(line, flush=True))
    failed = [result.name for result in results if not result.passed]
    print(f"{len(results) - len(failed)} of {len(results)} examples reached the lecture's outcome"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
