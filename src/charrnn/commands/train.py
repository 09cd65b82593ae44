"""``charrnn train CORPUS... [--out DIR]``: train a character language model on text files.

A thin layer over :func:`charrnn.trainer.train`. Every setting flag defaults to "not given",
so that the layers of settings stack: defaults, ``--preset``, ``--config FILE.toml``, then
the flags; and so that ``--resume`` knows which settings the person asked to change.
"""

from __future__ import annotations

import sys
from pathlib import Path

from charrnn.cells import CELL_TYPES
from charrnn.errors import CharRNNError
from charrnn.training_config import AMP_MODES, DECAYS, DEFAULT_MAX_STEPS, DEVICES, PRESETS, TrainConfig, build_config, load_toml

#: (flag, TrainConfig field, type, help). The defaults shown come from TrainConfig.
_SETTINGS = [
    ("--cell", "cell", str, f"cell type: {', '.join(sorted(CELL_TYPES))} (gru-reset-after is the fast GRU)"),
    ("--hidden-size", "hidden_size", int, "units per layer"),
    ("--num-layers", "num_layers", int, "stacked layers"),
    ("--embedding-size", "embedding_size", int, "character embedding size"),
    ("--dropout", "dropout", float, "dropout between layers and before the output, in [0, 1)"),
    ("--forget-bias", "forget_bias", float, "added to the LSTM's forget gate (TensorFlow's cell: 1.0)"),
    ("--sequence-length", "sequence_length", int, "characters per stream per step (truncated BPTT length)"),
    ("--batch-size", "batch_size", int, "parallel streams per process"),
    ("--learning-rate", "learning_rate", float, "Adam's peak learning rate"),
    ("--min-learning-rate", "min_learning_rate", float, "rate at the end of the decay (default: a tenth of the peak)"),
    ("--warmup-steps", "warmup_steps", int, "steps of linear warm-up"),
    ("--decay", "decay", str, f"learning-rate decay after warm-up: {', '.join(DECAYS)}"),
    ("--weight-decay", "weight_decay", float, "decoupled weight decay (AdamW) when above 0"),
    ("--grad-clip", "grad_clip", float, "clip the gradient's global norm to this (0: no clipping)"),
    ("--max-steps", "max_steps", int, f"stop after this many steps (with no limit given: {DEFAULT_MAX_STEPS})"),
    ("--epochs", "epochs", float, "stop after this many passes over the training text"),
    ("--max-time", "max_time", float, "stop after this many seconds; the schedule decays to that moment"),
    ("--val-fraction", "val_fraction", float, "the last part of the text held out for validation"),
    ("--eval-every", "eval_every", int, "validate and save a checkpoint every this many steps"),
    ("--eval-characters", "eval_characters", int, "characters of validation text per evaluation (0: all)"),
    ("--log-every", "log_every", int, "a metrics line every this many steps"),
    ("--seed", "seed", int, "random seed"),
    ("--device", "device", str, f"{', '.join(DEVICES)} (auto: CUDA, then MPS, then CPU)"),
    ("--amp", "amp", str, f"mixed precision on CUDA: {', '.join(AMP_MODES)}"),
    ("--threads", "num_threads", int, "CPU threads (default: the cores, shared among local processes)"),
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
    parser.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    for flag, field, kind, text in _SETTINGS:
        default = getattr(defaults, field)
        shown = f" (default: {default})" if default is not None else ""
        metavar = field.upper().split("_")[-1] if kind is not str else None  # --hidden-size SIZE
        parser.add_argument(flag, dest=field, type=kind, default=None, metavar=metavar, help=text + shown)
    parser.set_defaults(run=run)


def _overrides(args) -> dict:
    """The settings given as flags."""
    return {field: getattr(args, field) for _, field, _, _ in _SETTINGS if getattr(args, field) is not None}


def _resume_request(args) -> dict:
    """Only the settings asked for (file, then flags): a resumed run checks them against its own."""
    if args.preset:
        raise CharRNNError("--preset cannot change a resumed run; its settings are in the run's config.json")
    requested = load_toml(args.config) if args.config else {}
    requested.pop("preset", None)
    TrainConfig.from_dict({**TrainConfig().to_dict(), **requested}, source=args.config)  # name the file
    return {**requested, **_overrides(args)}


def _default_out(corpus: list[str]) -> Path:
    return Path("runs") / (Path(corpus[0]).resolve().stem or "run")


def run(args) -> int:
    """Train; 0 when a limit is reached, 130 / 143 on SIGINT / SIGTERM, 1 when training diverged."""
    from charrnn.trainer import train

    if args.override and not args.resume:
        raise CharRNNError("--override only applies with --resume")
    if args.out is None:
        if args.resume or not args.corpus:
            raise CharRNNError("--out is needed to name the run" if args.resume else
                               "no corpus given: name at least one text file or folder to train on")
        out = _default_out(args.corpus)
    else:
        out = Path(args.out)
    config = _resume_request(args) if args.resume else build_config(args.preset, args.config, _overrides(args))
    result = train(config, args.corpus, out, resume=args.resume, override=args.override,
                   progress=not args.quiet)
    if not result.is_main:
        return result.exit_code  # rank 0 speaks for a distributed run
    if result.exit_code == 1:
        print(f"charrnn: error: {result.message}", file=sys.stderr)
    elif result.exit_code:
        print(f"charrnn: {result.message}", file=sys.stderr)
    else:
        print(result.message)
    return result.exit_code
