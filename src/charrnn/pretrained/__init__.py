"""Models that ship with charrnn: a checkpoint folder each, inside the package, read offline.

Wherever a checkpoint is asked for, a pretrained model's name works too (a folder of that
name in the current directory comes first)::

    charrnn sample shakespeare --prime "ROMEO:"
    load_model("shakespeare")

Each is charrnn's one checkpoint format, its weights stored in half precision (see
:func:`export`); loading converts them back to float32.

Examples
--------
>>> sorted(PRETRAINED)
['shakespeare']
>>> pretrained_path("shakespeare").name
'shakespeare'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Pretrained:
    """A shipped model: what it was trained on, how, and how well it does."""

    name: str
    corpus: str
    command: str
    val_loss: float  # nats per character on the corpus's validation split, as shipped (half precision)
    description: str


PRETRAINED = {model.name: model for model in [
    Pretrained(
        name="shakespeare",
        corpus="tinyshakespeare (Karpathy's char-rnn data set, 1.1 M characters; the last 10% held out)",
        command="charrnn train tinyshakespeare.txt --out runs/shakespeare --max-steps 5000 --hidden-size 256 "
                "--num-layers 2 --amp none, then charrnn.pretrained.export('runs/shakespeare', 'src/charrnn/pretrained/shakespeare')",
        # charrnn.evaluation.evaluate(batch_size=32, sequence_length=256) on all 111,520 characters
        # of the split: 1.49679 in float32 and in the shipped float16 alike (10 min on 2 CPU cores).
        val_loss=1.4968,
        description="a 2x256 LSTM with charrnn's former default settings (float32)",
    ),
]}


def pretrained_path(name: str) -> Path | None:
    """The checkpoint folder of the pretrained model ``name``, or None when there is none."""
    if name not in PRETRAINED:
        return None
    return HERE / name


def folder_size(name: str) -> int:
    """Bytes the pretrained model ``name`` takes on disk."""
    return sum(path.stat().st_size for path in pretrained_path(name).iterdir() if path.is_file())


def export(run: str | os.PathLike, folder: str | os.PathLike, dtype: torch.dtype = torch.float16) -> Path:
    """Write the best checkpoint of ``run`` as a shippable checkpoint folder: the weights in
    ``dtype``, no optimizer or trainer state."""
    from charrnn.checkpoint import load_model, save_checkpoint  # the checkpoint module finds models here

    loaded = load_model(run)
    return save_checkpoint(folder, loaded.model.to(dtype), loaded.vocabulary, loaded.config)
