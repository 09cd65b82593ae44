"""``sequence_loss``: weighted cross-entropy over sequences (``tf.contrib.seq2seq``)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

_EPSILON = 1e-12  # TensorFlow's guard against an all-zero weight sum


def sequence_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None,
                  average_across_timesteps: bool = True, average_across_batch: bool = True) -> torch.Tensor:
    """Weighted softmax cross-entropy of ``logits`` ``(B, T, C)`` against ``targets`` ``(B, T)``.

    With ``ce[b, t]`` the cross-entropy and ``w`` the ``weights`` ``(B, T)`` (ones if omitted):

    - both averages (default): ``sum(ce·w) / (sum(w) + 1e-12)``, a scalar;
    - timesteps only: ``sum_t(ce·w) / (sum_t(w) + 1e-12)``, shape ``(B,)``;
    - batch only: ``sum_b(ce·w) / (sum_b(w) + 1e-12)``, shape ``(T,)`` (TensorFlow's code divides
      by the weight sum, whatever its docstring says);
    - neither: ``ce·w``, shape ``(B, T)``.
    """
    if logits.dim() != 3:
        raise ValueError(f"logits must be (B, T, C), got shape {list(logits.shape)}")
    if tuple(targets.shape) != tuple(logits.shape[:2]):
        raise ValueError(f"targets must be {list(logits.shape[:2])}, got {list(targets.shape)}")
    targets = torch.as_tensor(targets, device=logits.device).long()
    if weights is None:
        weights = torch.ones(targets.shape, dtype=logits.dtype, device=logits.device)
    else:
        weights = torch.as_tensor(weights, dtype=logits.dtype, device=logits.device)
        if weights.shape != targets.shape:
            raise ValueError(f"weights must be {list(targets.shape)}, got {list(weights.shape)}")
    batch, steps, classes = logits.shape
    # Flat (B·T, C) rows: much faster than cross_entropy's (B, C, T) layout, forward and back.
    cross_entropy = F.cross_entropy(logits.reshape(batch * steps, classes), targets.reshape(-1),
                                    reduction="none").view(batch, steps)  # (B, T)
    weighted = cross_entropy * weights
    if average_across_timesteps and average_across_batch:
        return weighted.sum() / (weights.sum() + _EPSILON)
    if average_across_timesteps:
        return weighted.sum(dim=1) / (weights.sum(dim=1) + _EPSILON)
    if average_across_batch:
        return weighted.sum(dim=0) / (weights.sum(dim=0) + _EPSILON)
    return weighted
