"""The evaluation loop: mean cross-entropy of a model on a text, carrying state throughout."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from charrnn.batches import gather_windows
from charrnn.checks import check_integer, check_optional
from charrnn.errors import CharRNNError


@dataclass
class EvaluationResult:
    """How well a model predicts a text.

    Attributes
    ----------
    loss : float
        Mean cross-entropy, in nats per character.
    bits_per_character : float
        The same in bits: ``loss / ln 2``.
    num_characters : int
        How many characters were predicted (and averaged over).
    """

    loss: float
    bits_per_character: float
    num_characters: int


def evaluate(model, ids: np.ndarray, batch_size: int = 32, sequence_length: int = 256,
             device="cpu", max_characters: int | None = None) -> EvaluationResult:
    """Mean cross-entropy of ``model`` predicting each id of ``ids`` from those before it.

    The ``N = len(ids) - 1`` predictions are cut into ``B`` streams of ``L = N // B``
    consecutive ones. ``B`` is ``batch_size``, or fewer when the text is short, so that each
    stream is at least ``sequence_length`` long (``B = min(batch_size, max(1, N //
    sequence_length))``). Each stream starts from the zero state and carries its state to its
    end, ``sequence_length`` steps per forward call (the last call may be shorter), so every
    character but a stream's first is predicted with all of its stream before it as context.
    The last ``N - B * L`` predictions (at most ``B - 1``) are left out; with ``batch_size=1``
    none is, and the result is that of one forward pass over the whole text.

    Parameters
    ----------
    model : CharLM-like
        ``model(x (B, T) long, state) -> (logits (B, T, V), state)`` and
        ``model.zero_state(B, device)``. Run in eval mode under ``torch.inference_mode``;
        its train/eval mode is restored afterwards.
    ids : 1-D integer array
        The text's ids (a memory map is fine: only ``B * sequence_length`` are read at once).
    batch_size, sequence_length : int
    device : str or torch.device
        Where the model lives; each chunk of ids is moved there.
    max_characters : int, optional
        Predict only the first ``max_characters`` characters (after the first id): a fixed,
        cheaper subset for periodic validation during training.

    Returns
    -------
    EvaluationResult

    Raises
    ------
    CharRNNError
        For bad settings, or fewer than two ids (nothing to predict).
    """
    batch_size = check_integer("batch_size", batch_size)
    sequence_length = check_integer("sequence_length", sequence_length)
    max_characters = check_optional(check_integer, "max_characters", max_characters)
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise CharRNNError(f"ids must be one-dimensional, got shape {list(ids.shape)}")
    num_predictions = len(ids) - 1
    if max_characters is not None:
        num_predictions = min(num_predictions, max_characters)
    if num_predictions < 1:
        raise CharRNNError(f"cannot evaluate a text of {len(ids)} character(s): it takes at least 2 "
                           "(each character is predicted from the ones before it)")

    num_streams = min(batch_size, max(1, num_predictions // sequence_length))
    stream_length = num_predictions // num_streams
    stream_starts = np.arange(num_streams) * stream_length  # (B,)
    device = torch.device(device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            state = model.zero_state(num_streams, device)
            total = torch.zeros((), dtype=torch.float64, device=device)
            for offset in range(0, stream_length, sequence_length):
                steps = min(sequence_length, stream_length - offset)
                window = gather_windows(ids, stream_starts + offset, steps + 1).to(device)  # (B, t + 1)
                logits, state = model(window[:, :-1], state)  # (B, t, V)
                targets = window[:, 1:]  # (B, t)
                total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                         targets.reshape(-1), reduction="sum").double()
            loss = total.item() / (num_streams * stream_length)
    finally:
        model.train(was_training)
    return EvaluationResult(loss=loss, bits_per_character=loss / math.log(2),
                            num_characters=num_streams * stream_length)
