"""The sequence classifier: embedding → cell stack over each text's own length → final state → logits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from charrnn.cells import LSTMStateTuple
from charrnn.checks import check_integer
from charrnn.model import CharLMConfig, make_cell_stack
from charrnn.unroll import dynamic_rnn
from charrnn.vocabulary import Vocabulary


@dataclass
class ClassifierConfig(CharLMConfig):
    """What it takes to rebuild a :class:`CharClassifier` (saved as ``config.json``).

    The language model's settings (``vocab_size``, ``cell``, ``hidden_size``, ``num_layers``,
    ``embedding_size``, ``dropout``, and ``forget_bias`` where :class:`CharLMConfig` has it)
    plus ``num_classes``.
    """

    num_classes: int = 2

    def __post_init__(self):
        super().__post_init__()
        check_integer("num_classes", self.num_classes, minimum=2)


class CharClassifier(nn.Module):
    """Classify whole texts from their characters.

    ``ids`` ``(B, T)`` → embedding ``(B, T, E)`` → stack of ``num_layers`` cells run by
    :func:`~charrnn.unroll.dynamic_rnn` with each text's ``sequence_length`` (the fused
    kernels pack the batch, so padding is never read) → the top layer's final ``h`` ``(B, H)``
    → dropout → dense → class logits ``(B, C)``.

    The embedding has ``vocab_size + 1`` rows: row ``vocab_size`` stands for any character
    the vocabulary does not hold (see :func:`encode_texts`).
    """

    #: The ``kind`` of its checkpoints, and the configuration they hold.
    KIND = "classifier"
    CONFIG = ClassifierConfig

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size + 1, config.embedding_size)
        self.rnn = make_cell_stack(config)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.num_classes)

    @staticmethod
    def expected_shapes(config: ClassifierConfig) -> dict[str, tuple[int, ...]]:
        """Shapes of the tensors that grow with the configuration's sizes, checked before building."""
        return {"embedding.weight": (config.vocab_size + 1, config.embedding_size),
                "head.weight": (config.num_classes, config.hidden_size)}

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``ids`` ``(B, T)`` padded with anything, ``lengths`` ``(B,)`` → logits ``(B, C)``."""
        embedded = self.embedding(ids)  # (B, T, E)
        _, state = dynamic_rnn(self.rnn, embedded, sequence_length=lengths)
        top = state[-1]
        final_h = top.h if isinstance(top, LSTMStateTuple) else top  # (B, H)
        return self.head(self.dropout(final_h))  # (B, C)


def encode_texts(vocabulary: Vocabulary, texts) -> list[np.ndarray]:
    """Each text as an int64 id array; characters outside ``vocabulary`` get id ``vocabulary.size``."""
    index, unknown = vocabulary.index, vocabulary.size
    return [np.fromiter((index.get(char, unknown) for char in text), dtype=np.int64, count=len(text))
            for text in texts]


def pad_batch(encoded: list[np.ndarray], device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Id arrays → ``(ids (B, T_max) long padded with 0, lengths (B,) long)``."""
    lengths = torch.tensor([len(ids) for ids in encoded], dtype=torch.long)
    ids = torch.zeros(len(encoded), int(lengths.max()) if len(encoded) else 0, dtype=torch.long)
    for row, sequence in enumerate(encoded):
        ids[row, : len(sequence)] = torch.from_numpy(sequence)
    return ids.to(device), lengths.to(device)
