"""Sliding windows over ids, and the text read back from per-window predictions."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def sliding_windows(ids, sequence_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All ``(x, y)`` windows of ``sequence_length`` ids, ``y`` shifted one step ahead of ``x``.

    ``ids`` of length ``L`` give ``L - sequence_length`` windows, each ``(W, sequence_length)``.
    Both are strided views of ``ids`` (no copy, memory O(L)), as in the lecture's loop
    ``x = ids[i:i+T]``, ``y = ids[i+1:i+T+1]``.

    >>> x, y = sliding_windows(torch.arange(5), 3)
    >>> x.tolist(), y.tolist()
    ([[0, 1, 2], [1, 2, 3]], [[1, 2, 3], [2, 3, 4]])
    """
    ids = torch.as_tensor(np.asarray(ids) if not isinstance(ids, torch.Tensor) else ids)
    if ids.dim() != 1:
        raise ValueError(f"ids must be one-dimensional, got shape {list(ids.shape)}")
    if sequence_length < 1:
        raise ValueError(f"sequence_length must be at least 1, got {sequence_length}")
    if len(ids) < sequence_length + 1:
        raise ValueError(f"need at least sequence_length + 1 = {sequence_length + 1} ids, got {len(ids)}")
    x = ids[:-1].unfold(0, sequence_length, 1)  # (W, T) view
    y = ids[1:].unfold(0, sequence_length, 1)  # (W, T) view
    return x, y


def text_from_windows(window_texts: Sequence[str]) -> str:
    """Join per-window predictions of consecutive windows into one text.

    The first window is taken whole, then the last character of each later window, as the
    lecture prints its result.

    >>> text_from_windows(["f y", " yo", "you"])
    'f you'
    """
    if not window_texts:
        return ""
    return window_texts[0] + "".join(text[-1] for text in window_texts[1:])
