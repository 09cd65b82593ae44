"""Dropout, with a mask that is cheap to draw on a CPU.

PyTorch's CPU dropout draws every element's keep-or-drop from the generator one at a time
(``bernoulli_``): for the ``(32, 64, 384)`` layer outputs of the 15-minute preset that takes
7.6 ms on two cores, and a step draws two such masks, about a tenth of its time. Here one 64-bit
draw serves four elements, each compared as 16 bits with a threshold, which takes a quarter to
a half of the time (``bench/bench_dropout.py``). The drop probability is so rounded to a multiple of 2⁻¹⁶ (by at most 7.6e-6), and the
kept elements are scaled by the inverse of the rounded keep probability, so that the expected
output still equals the input. On other devices PyTorch's own kernels draw the mask, which are
fast there (cuDNN's and CUDA's counter-based generators).

Every charrnn model drops out through :func:`dropout`: between the layers of a stack, before
the output layer, on the embeddings and on the hidden-to-hidden matrices.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_LEVELS = 1 << 16  # the values a 16-bit piece of a draw takes


def draws_own_mask(device: torch.device) -> bool:
    """Whether :func:`dropout` draws its own mask on ``device`` (a CPU) rather than PyTorch's."""
    return device.type == "cpu"


def _check_probability(p: float) -> float:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p!r}")
    return float(p)


def _dropped_levels(p: float) -> int:
    """``p`` as a count of the 2¹⁶ levels, at least one kept."""
    return min(round(p * _LEVELS), _LEVELS - 1)


def keep_mask(shape: tuple[int, ...], p: float, device: torch.device | str | None = None) -> torch.Tensor:
    """A boolean mask of ``shape``, each element True (kept) with probability about ``1 - p``.

    Drawn from the default generator of ``device``, four elements to a 64-bit draw.
    """
    count = math.prod(shape)
    words = torch.randint(-(1 << 63), (1 << 63) - 1, ((count + 3) // 4,), dtype=torch.int64, device=device)
    pieces = words.view(torch.int16)[:count]  # each uniform over [-2¹⁵, 2¹⁵)
    return (pieces >= _dropped_levels(p) - _LEVELS // 2).view(shape)


def dropout(inputs: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``inputs`` with each element zeroed with probability ``p`` and the rest scaled by ``1/(1-p)``.

    What :func:`torch.nn.functional.dropout` computes; on a CPU with a mask drawn by
    :func:`keep_mask`. The identity when not ``training`` or when ``p`` is 0.
    """
    if not training or _check_probability(p) == 0.0:
        return inputs
    if not draws_own_mask(inputs.device):
        return F.dropout(inputs, p, True)
    scale = _LEVELS / (_LEVELS - _dropped_levels(p))
    mask = keep_mask(tuple(inputs.shape), p, inputs.device).to(inputs.dtype).mul_(scale)
    return inputs * mask


class Dropout(nn.Module):
    """:func:`dropout` as a module, in training mode only: ``torch.nn.Dropout``'s place."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = _check_probability(p)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return dropout(inputs, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LockedDropout(Dropout):
    """Dropout with one mask per stream for a whole sequence: ``(B, T, D)`` masked by ``(B, 1, D)``
    (Gal and Ghahramani's variational dropout), so a unit is dropped at every step or none."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return inputs
        ones = inputs.new_ones(inputs.shape[0], 1, inputs.shape[2])  # (B, 1, D)
        return inputs * dropout(ones, self.p)
