"""``charrnn models``: the pretrained models that ship with charrnn, usable wherever a checkpoint is."""

from __future__ import annotations

from charrnn.pretrained import PRETRAINED, folder_size


def add_parser(subparsers) -> None:
    """Register ``charrnn models``."""
    parser = subparsers.add_parser(
        "models", help="list the pretrained models that ship with charrnn",
        description="List the pretrained models that ship with charrnn. Each name works wherever a "
                    "checkpoint is asked for: charrnn sample NAME, charrnn eval NAME FILE.")
    parser.set_defaults(run=run)


def run(args) -> int:
    """Print one block per model: its name, size, corpus, validation loss and the command that made it."""
    for model in PRETRAINED.values():
        print(f"{model.name}: {model.description}, {folder_size(model.name) / 1e6:.1f} MB; validation loss "
              f"{model.val_loss:.4f} nats/character\n  corpus: {model.corpus}\n  made by: {model.command}")
    return 0
