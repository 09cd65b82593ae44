"""``charrnn train CORPUS... [--out DIR]``: train a character language model on text files.

A thin layer over :func:`charrnn.training.train`, which settles the settings. Every setting
flag defaults to "not given", so that the layers of settings stack: defaults, ``--preset``,
``--config FILE.toml``, then the flags; and so that ``--resume`` knows which settings the
person asked to change.
"""

from __future__ import annotations

import sys

from charrnn.cells import CELL_TYPES
from charrnn.checks import non_negative_int, positive_int
from charrnn.devices import DEVICES
from charrnn.training.schedule import DECAYS
from charrnn.training.settings import AMP_MODES, DEFAULT_MAX_STEPS, PRESETS, TrainConfig

#: (flag, TrainConfig field, type, help). The defaults shown come from TrainConfig.
_SETTINGS = [
    ("--cell", "cell", str, f"cell type: {', '.join(sorted(CELL_TYPES))} (gru-reset-after is the fast GRU)"),
    ("--hidden-size", "hidden_size", positive_int, "units per layer"),
    ("--num-layers", "num_layers", positive_int, "stacked layers"),
    ("--embedding-size", "embedding_size", positive_int, "character embedding size"),
    ("--dropout", "dropout", float, "dropout between layers and before the output, in [0, 1)"),
    ("--forget-bias", "forget_bias", float, "added to the LSTM's forget gate (TensorFlow's cell: 1.0)"),
    ("--weight-dropout", "weight_dropout", float,
     "DropConnect on the hidden-to-hidden matrices, one mask per batch (AWD-LSTM), in [0, 1)"),
    ("--input-dropout", "input_dropout", float, "locked dropout on the embeddings, one mask per stream, in [0, 1)"),
    ("--locked-dropout", "locked_dropout", bool, "make --dropout before the output layer one mask per stream"),
    ("--tie-weights", "tie_weights", bool, "the output layer shares the embedding matrix (embedding size = hidden size)"),
    ("--sequence-length", "sequence_length", positive_int, "characters per stream per step (truncated BPTT length)"),
    ("--batch-size", "batch_size", positive_int, "parallel streams per process"),
    ("--learning-rate", "learning_rate", float, "Adam's peak learning rate"),
    ("--min-learning-rate", "min_learning_rate", float, "rate at the end of the decay (default: a hundredth of the peak)"),
    ("--warmup-steps", "warmup_steps", non_negative_int, "steps of linear warm-up (default: 100, or the first 5%% of a shorter run)"),
    ("--decay", "decay", str, f"learning-rate decay after warm-up: {', '.join(DECAYS)}"),
    ("--weight-decay", "weight_decay", float, "decoupled weight decay (AdamW) when above 0"),
    ("--grad-clip", "grad_clip", float, "clip the gradient's global norm to this (0: no clipping)"),
    ("--average-decay", "average_decay", float,
     "evaluate, sample and save an exponential moving average of the weights, this decay a step "
     "(e.g. 0.998; 0: off)"),
    ("--max-steps", "max_steps", positive_int, f"stop after this many steps (with no limit given: {DEFAULT_MAX_STEPS})"),
    ("--epochs", "epochs", float, "stop after this many passes over the training text"),
    ("--max-time", "max_time", float, "stop after this many seconds; the schedule decays to that moment"),
    ("--val-fraction", "val_fraction", float, "the last part of the text held out for validation"),
    ("--documents-per-line", "documents_per_line", bool,
     "each line is its own text (names, titles): read from a fresh state, the line break predicted at its end"),
    ("--eval-every", "eval_every", positive_int,
     "validate and save a checkpoint every this many steps (default: about 10 times a run, at most every 500)"),
    ("--early-stop", "early_stop", positive_int,
     "stop when this many evaluations in a row have not improved on the best validation loss"),
    ("--keep", "keep", non_negative_int,
     "also keep the last N evaluated checkpoints, as checkpoints/step-<step>-loss-<val>"),
    ("--sample-every", "sample_every", positive_int,
     "print a sample every this many steps and append it to samples.jsonl"),
    ("--sample-length", "sample_length", positive_int, "characters per --sample-every sample"),
    ("--sample-prime", "sample_prime", str, "text the --sample-every samples continue (default: a new line)"),
    ("--sample-temperature", "sample_temperature", float, "temperature of the --sample-every samples"),
    ("--init-from", "init_from", str,
     "fine-tune: start from this checkpoint, run folder or pretrained model (its shape and weights; "
     "its vocabulary extended by the corpus's new characters)"),
    ("--eval-characters", "eval_characters", non_negative_int, "characters of validation text per evaluation (0: all)"),
    ("--log-every", "log_every", positive_int, "a metrics line every this many steps"),
    ("--seed", "seed", non_negative_int, "random seed"),
    ("--device", "device", str, f"{', '.join(DEVICES)} or cuda:N (auto: CUDA, then MPS, then CPU)"),
    ("--amp", "amp", str, f"mixed precision: {', '.join(AMP_MODES)} (bf16 on CUDA or a CPU, fp16 on CUDA, auto: bf16 where "
                           f"the hardware has it)"),
    ("--threads", "num_threads", positive_int, "CPU threads (default: the cores, shared among local processes)"),
    ("--encoding", "encoding", str, "text encoding of the corpus files"),
]


def add_parser(subparsers) -> None:
    """Register ``charrnn train``."""
    defaults = TrainConfig()
    parser = subparsers.add_parser(
        "train", help="train a character language model on text files",
        description="Train a character-level language model on text files or folders. The run "
                    "directory gets config.json, vocab.json, checkpoints/best and checkpoints/latest, "
                    "metrics.jsonl and loss.png. Ctrl-C saves a checkpoint; --resume continues it.",
        epilog="Several processes: torchrun --nproc_per_node=N -m charrnn train CORPUS ...")
    parser.add_argument("corpus", nargs="*", metavar="CORPUS", help="text files or folders")
    parser.add_argument("--out", metavar="DIR", help="run directory (default: runs/<first corpus name>)")
    parser.add_argument("--config", metavar="FILE.toml", help="settings file (keys as the flags, with _ or -)")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="a named set of settings, e.g. cpu-15min")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    parser.add_argument("--override", action="store_true",
                        help="with --resume: allow changing settings such as the learning rate or batch size")
    parser.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    parser.add_argument("--include", action="append", default=[], metavar="GLOB",
                        help="take only the files of CORPUS folders whose path or name matches (repeatable)")
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                        help="leave out the files of CORPUS folders whose path or name matches (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    for flag, field, kind, text in _SETTINGS:
        if kind is bool:  # a switch; None (not given) lets the layers below decide
            parser.add_argument(flag, dest=field, action="store_const", const=True, default=None, help=text)
            continue
        default = getattr(defaults, field)
        shown = f" (default: {default})" if default not in (None, "") else ""
        metavar = field.upper().split("_")[-1] if kind is not str else None  # --hidden-size SIZE
        parser.add_argument(flag, dest=field, type=kind, default=None, metavar=metavar, help=text + shown)
    parser.set_defaults(run=run)


def _overrides(args) -> dict:
    """The settings given as flags."""
    return {field: getattr(args, field) for _, field, _, _ in _SETTINGS if getattr(args, field) is not None}


def run(args) -> int:
    """Train; 0 when a limit is reached, 130 / 143 on SIGINT / SIGTERM, 1 when training diverged."""
    from charrnn.training import train

    result = train(_overrides(args), args.corpus, args.out, resume=args.resume, override=args.override,
                   progress=not args.quiet, config_file=args.config, preset=args.preset, overwrite=args.overwrite,
                   include=args.include, exclude=args.exclude)
    if not result.is_main:
        return result.exit_code  # rank 0 speaks for a distributed run
    if result.exit_code == 1:
        print(f"charrnn: error: {result.message}", file=sys.stderr)
    elif result.exit_code:
        print(f"charrnn: {result.message}", file=sys.stderr)
    else:
        print(result.message)
    return result.exit_code
