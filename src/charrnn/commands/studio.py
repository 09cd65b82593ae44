"""``charrnn studio``: a local web page to train the lecture's examples live and look into runs.

A thin layer over :func:`charrnn.studio.server.serve`. The web packages are optional
(``pip install 'charrnn[studio]'``); without them the command says so in one line.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from charrnn.checks import check_integer
from charrnn.devices import num_threads
from charrnn.errors import CharRNNError, SettingError

#: What the studio imports beyond charrnn's own dependencies.
WEB_PACKAGES = ("starlette", "uvicorn")
INSTALL_HINT = "charrnn studio needs the web packages: pip install 'charrnn[studio]'"


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 meaning a free one."""
    try:
        return check_integer("", int(text), minimum=0, maximum=65535)
    except ValueError as error:
        message = str(error) if isinstance(error, SettingError) else f"invalid int value: {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def add_parser(subparsers) -> None:
    """Register ``charrnn studio``."""
    parser = subparsers.add_parser(
        "studio", help="a local web page: train the lecture's examples live, look into your runs",
        description="Serve a page on this machine where the lecture's examples (hihello, ' if you want you', the "
                    "long sentence) train live: the loss, every position's prediction and the hidden state, "
                    "step by step; and where run folders show their loss curves, sample and inspect. "
                    "Needs pip install 'charrnn[studio]'.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only; another prints a warning)")
    parser.add_argument("--port", type=port_number, default=0, help="port (default: a free one, printed)")
    parser.add_argument("--runs", metavar="DIR", help="show the run folders under DIR (read-only)")
    parser.add_argument("--open", action="store_true", help="open the page in a browser")
    parser.set_defaults(run=run)


def run(args) -> int:
    """Serve the page until Ctrl-C (which exits 130)."""
    for name in WEB_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            raise CharRNNError(INSTALL_HINT) from None
    if args.runs is not None and not Path(args.runs).is_dir():
        raise CharRNNError(f"--runs {args.runs}: no such folder")
    from charrnn.studio.server import serve

    with num_threads(1):  # the lecture's models are tiny, and the page must not take every core
        serve(args.host, args.port, args.runs, args.open)
    return 0
