"""Subcommands of the ``charrnn`` command line, one module each (see :mod:`charrnn.cli`)."""

from __future__ import annotations

from charrnn.checks import positive_int
from charrnn.devices import DEFAULT_DEVICE, DEVICES


#: What a CHECKPOINT argument may name.
CHECKPOINT_HELP = "a run directory, a checkpoint folder, or a pretrained model's name (charrnn models lists them)"


def add_machine_arguments(parser, threads_default: str = "PyTorch's, the cores") -> None:
    """``--device`` and ``--threads``, the same in every command that runs a model."""
    parser.add_argument("--device", default=DEFAULT_DEVICE,
                        help=f"where to run: {', '.join(DEVICES)} or cuda:N (default: {DEFAULT_DEVICE}: CUDA, "
                             f"then MPS, then the CPU)")
    parser.add_argument("--threads", type=positive_int, metavar="N",
                        help=f"CPU threads (default: {threads_default}; 1 is fastest on a busy machine)")
