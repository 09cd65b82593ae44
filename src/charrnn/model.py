"""The character language model: embedding → cell stack → dropout → dense → logits."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from charrnn.cells import CELL_TYPES, BasicLSTMCell, MultiRNNCell, make_cell
from charrnn.errors import CharRNNError
from charrnn.unroll import dynamic_rnn, map_state


@dataclass
class CharLMConfig:
    """What it takes to rebuild a :class:`CharLM` (saved as ``config.json`` in a run)."""

    vocab_size: int
    cell: str = "lstm"
    hidden_size: int = 256
    num_layers: int = 2
    embedding_size: int = 64
    dropout: float = 0.0
    #: Added to the LSTM's forget gate: TensorFlow's 1.0 by default. The trainer uses 0.0 (what
    #: ``torch.nn.LSTM`` amounts to), which learns markedly faster in a short run on characters.
    forget_bias: float = 1.0

    def __post_init__(self):
        if self.cell not in CELL_TYPES:
            raise CharRNNError(f"cell must be one of {', '.join(sorted(CELL_TYPES))}, got {self.cell!r}")
        for name in ("vocab_size", "hidden_size", "num_layers", "embedding_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise CharRNNError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise CharRNNError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if isinstance(self.forget_bias, bool) or not isinstance(self.forget_bias, (int, float)) \
                or not math.isfinite(self.forget_bias):
            raise CharRNNError(f"forget-bias must be a finite number, got {self.forget_bias!r}")

    def to_dict(self) -> dict:
        """Plain values for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "CharLMConfig":
        """Rebuild from :meth:`to_dict`'s output; unknown keys are an error."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise CharRNNError(f"unknown model settings: {', '.join(unknown)}")
        return cls(**values)


def make_cell_stack(config: CharLMConfig) -> MultiRNNCell:
    """The ``num_layers`` cells of ``config`` over its embedding, with dropout between layers.

    LSTM cells get ``config.forget_bias``.
    """
    input_sizes = [config.embedding_size] + [config.hidden_size] * (config.num_layers - 1)
    cells = [make_cell(config.cell, config.hidden_size, size) for size in input_sizes]
    for cell in cells:
        if isinstance(cell, BasicLSTMCell):
            cell.forget_bias = float(config.forget_bias)
    return MultiRNNCell(cells, dropout=config.dropout)


class CharLM(nn.Module):
    """A character-level language model.

    ``ids`` ``(B, T)`` → embedding ``(B, T, E)`` → stack of ``num_layers`` cells with
    ``hidden_size`` units, dropout between layers → dropout → dense → logits ``(B, T, V)``.
    An LSTM's forget gate gets ``config.forget_bias``.
    The stack runs on PyTorch's fused kernels when the cell type has a fused form
    (``lstm``, ``rnn``, ``gru-reset-after``); TensorFlow 1's ``gru`` runs step by step.
    """

    def __init__(self, config: CharLMConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        self.rnn = make_cell_stack(config)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def zero_state(self, batch_size: int, device=None):
        """The all-zero recurrent state for ``batch_size`` streams."""
        return self.rnn.zero_state(batch_size, self.head.weight.dtype, device or self.head.weight.device)

    def forward(self, ids: torch.Tensor, state=None):
        """``ids`` ``(B, T)`` and a state (zeros if None) → ``(logits (B, T, V), final_state)``."""
        embedded = self.embedding(ids)  # (B, T, E)
        outputs, state = dynamic_rnn(self.rnn, embedded, initial_state=state)  # (B, T, H)
        return self.head(self.dropout(outputs)), state  # (B, T, V)


def detach_state(state):
    """The same state cut from the autograd graph (truncated back-propagation through time)."""
    return map_state(torch.Tensor.detach, state)
