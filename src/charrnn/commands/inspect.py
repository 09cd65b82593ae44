"""``charrnn inspect CHECKPOINT (--text TEXT | --file FILE)``: what a model's units do on a text.

A thin layer over :func:`charrnn.checkpoint.load_model`, :func:`charrnn.inspection.record` and
:func:`charrnn.inspect_report.write_report`: it writes a page, two pictures, a summary and the
recording into ``--out``, and prints, per feature, the units that track it best.
"""

from __future__ import annotations

import re
from pathlib import Path

from charrnn.checkpoint import load_model
from charrnn.commands import CHECKPOINT_HELP, add_machine_arguments
from charrnn.corpus import read_text
from charrnn.devices import num_threads, select_device
from charrnn.errors import CharRNNError, SettingError
from charrnn.inspect_report import write_report
from charrnn.inspection import ALL_KINDS, FEATURES, record, regex_feature
from charrnn.vocabulary import UnknownCharacterError


def add_parser(subparsers) -> None:
    """Register ``charrnn inspect``."""
    parser = subparsers.add_parser(
        "inspect", help="see what a model's units and guesses do on a text (a page and pictures)",
        description="Run a text through a checkpoint (or a run directory: its best checkpoint) and write "
                    "into --out: inspect.html (the text coloured by any unit or by surprise, the top-5 "
                    "guesses for each next character, the units that track each feature), units.png, "
                    "saturation.png (gated cells), units.json and recording.safetensors.")
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help=CHECKPOINT_HELP)
    texts = parser.add_mutually_exclusive_group(required=True)
    texts.add_argument("--text", metavar="TEXT", help="the text to inspect")
    texts.add_argument("--file", metavar="FILE", help="read the text to inspect from a file")
    parser.add_argument("--encoding", default="utf-8", help="encoding of --file (default: utf-8)")
    parser.add_argument("--out", metavar="DIR",
                        help="folder for the report (default: inspect-<checkpoint name> in the current folder)")
    parser.add_argument("--feature", action="append", default=[], metavar="NAME=REGEX",
                        help="also score units against the characters inside matches of REGEX (repeatable); "
                             f"built in: {', '.join(FEATURES)}")
    parser.add_argument("--skip-unknown", action="store_true",
                        help="drop characters the model's vocabulary lacks instead of failing")
    parser.add_argument("--layer", type=int, metavar="N",
                        help="the layer shown first and drawn in units.png, 0 the bottom (default: the top one)")
    parser.add_argument("--kind", choices=ALL_KINDS, metavar="K",
                        help=f"what of the layer: {', '.join(ALL_KINDS)} (default: h)")
    add_machine_arguments(parser)
    parser.set_defaults(run=run)


def parse_features(values: list[str]) -> dict:
    """The built-in features plus each ``--feature NAME=REGEX``; a bad one is a one-line SettingError."""
    features = dict(FEATURES)
    for value in values:
        name, equals, pattern = value.partition("=")
        if not equals or not name.strip() or not pattern:
            raise SettingError(f"--feature must be NAME=REGEX, got {value!r}")
        if not re.fullmatch(r"[\w.-]+", name):
            raise SettingError(f"--feature name must be letters, digits, '_', '.' or '-', got {name!r}")
        try:
            re.compile(pattern)
        except re.error as error:
            raise SettingError(f"--feature {name}: {pattern!r} is not a regular expression ({error})") from None
        features[name] = regex_feature(pattern)
    return features


def run(args) -> int:
    """Inspect, write the report and print its summary."""
    features = parse_features(args.feature)
    device = select_device(args.device)
    with num_threads(args.threads):
        return _inspect(args, features, device)


def _inspect(args, features: dict, device) -> int:
    source = args.file if args.file is not None else "--text"
    text = read_text(args.file, args.encoding) if args.file is not None else args.text
    if not text:
        raise CharRNNError("--text is empty: give some text to inspect")
    loaded = load_model(args.checkpoint, map_location=device)
    num_layers = loaded.config.num_layers
    if args.layer is not None and not 0 <= args.layer < num_layers:
        raise SettingError(f"--layer must be from 0 to {num_layers - 1} (the model has {num_layers} "
                           f"layer{'s' if num_layers > 1 else ''}), got {args.layer}")
    try:
        recording = record(loaded.model, loaded.vocabulary, text, skip_unknown=args.skip_unknown)
    except UnknownCharacterError as error:
        raise UnknownCharacterError(f"{source}: {str(error).removeprefix('text: ')}; "
                                    "pass --skip-unknown to drop them") from None
    except CharRNNError as error:
        raise CharRNNError(f"{source}: {error}") from None
    layer = num_layers - 1 if args.layer is None else args.layer
    if args.kind is not None and args.kind not in recording.kinds(layer):
        raise SettingError(f"--kind must be one of {', '.join(recording.kinds(layer))} for layer {layer} "
                           f"({recording.cell_types[layer]}), got {args.kind!r}")
    out = Path(args.out) if args.out else Path(f"inspect-{Path(args.checkpoint).resolve().name}")
    report = write_report(recording, out, features, layer=args.layer, kind=args.kind,
                          title=f"charrnn inspect: {loaded.path}")
    _print_summary(report, len(text))
    return 0


def _print_summary(report, given: int) -> None:
    recording = report.recording
    skipped = given - len(recording)
    print(f"inspected {len(recording):,} characters"
          + (f" ({skipped:,} outside the vocabulary skipped)" if skipped else "")
          + f"; layers: {', '.join(recording.cell_types)}")
    print("units that track each feature best (AUC for yes/no features, |r| for graded ones):")
    for name, entry in report.summary["features"].items():
        if not entry["units"]:
            print(f"  {name}: {entry['note']}")
            continue
        best = ", ".join(f"layer {u['layer']} {u['kind']} {u['unit']} ({u['measure']} {u['score']:.3f})"
                         for u in entry["units"][:3])
        print(f"  {name}: {best}")
    for note in report.notes:
        print(f"note: {note}")
    print(f"wrote {', '.join(path.name for path in report.files)} to {report.out_dir}")
    print(f"open {report.out_dir / 'inspect.html'} in a browser")
