"""The ``charrnn`` command line: a thin skin over the library.

Each subcommand lives in :mod:`charrnn.commands` as a module with ``add_parser(subparsers)``
and ``run(args) -> int``. Errors meant for the user (:class:`CharRNNError`) become one line on
stderr and exit status 2 (bad usage or input) or 1 (failure at run time).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from charrnn.errors import CharRNNError

#: Subcommand modules, in the order ``charrnn --help`` lists them.
COMMANDS = ["lecture", "train", "classify", "sample", "evaluate", "models", "inspect", "studio"]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="charrnn",
        description="Character-level recurrent neural networks: the RNN lecture, and training on any text.",
    )
    from charrnn import __version__

    parser.add_argument("--version", action="version", version=f"charrnn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"charrnn.commands.{name}").add_parser(subparsers)
    _use_one_line_errors(parser)
    return parser


def _use_one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` and every subcommand parser below it :func:`_one_line_error`."""
    parser.error = _one_line_error(parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                _use_one_line_errors(subparser)


def _one_line_error(parser: argparse.ArgumentParser):
    """argparse's ``error`` as one line on stderr and exit status 2, like every error of charrnn.

    A value refused by one of :mod:`charrnn.checks`' types reads as the library says it:
    ``--top-k must be a positive integer, got 0``.
    """
    def error(message: str):
        message = re.sub(r"^argument ([^:]+): must be ", r"\1 must be ", message)
        command = parser.prog.removeprefix("charrnn").strip()
        print(f"charrnn: error: {command + ': ' if command else ''}{message}", file=sys.stderr)
        sys.exit(2)
    return error


def _deepest_parser(parser: argparse.ArgumentParser, args) -> argparse.ArgumentParser:
    """The parser of the subcommand ``args`` chose (``classify train``'s, say)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = getattr(args, action.dest, None)
            if chosen in action.choices:
                return _deepest_parser(action.choices[chosen], args)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``charrnn`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:  # argparse would name the top parser; name the (sub)command they were given to
        _deepest_parser(parser, args).error(f"unrecognized arguments: {' '.join(extras)}")
    try:
        return int(args.run(args) or 0)
    except CharRNNError as error:
        print(f"charrnn: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("charrnn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `charrnn sample ... | head`): not an error of ours.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
