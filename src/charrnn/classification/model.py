"""The sequence classifier: embedding → cell stack (one or both directions) over each text's own
length → pooling over its valid positions → logits."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from charrnn.cells import LSTMStateTuple
from charrnn.checks import check_integer, check_number
from charrnn.dropout import Dropout
from charrnn.errors import SettingError
from charrnn.model import CharLMConfig, make_cell_stack
from charrnn.unroll import bidirectional_dynamic_rnn, dynamic_rnn
from charrnn.vocabulary import Vocabulary

#: What a text's feature vector can be built from: the final state, the mean or the maximum of
#: the outputs over the valid positions; ``+`` joins several (``final+max``).
POOLINGS = ("final", "mean", "max")


def parse_pooling(pooling: str) -> tuple[str, ...]:
    """``'final+max'`` -> ``('final', 'max')``; a :class:`SettingError` for anything else."""
    parts = tuple(pooling.split("+")) if isinstance(pooling, str) else ()
    if not parts or any(part not in POOLINGS for part in parts) or len(set(parts)) != len(parts):
        raise SettingError(f"--pooling must be one of {', '.join(POOLINGS)} or several joined by '+' "
                           f"(e.g. final+max), got {pooling!r}")
    return parts


@dataclass
class ClassifierConfig(CharLMConfig):
    """What it takes to rebuild a :class:`CharClassifier` (saved as ``config.json``).

    The language model's settings (``vocab_size``, ``cell``, ``hidden_size``, ``num_layers``,
    ``embedding_size``, ``dropout``, and ``forget_bias`` where :class:`CharLMConfig` has it)
    plus ``num_classes``, ``bidirectional`` (a second stack reads each text backwards),
    ``pooling`` (see :data:`POOLINGS`), ``ensemble`` (that many networks of this shape, from
    different initial weights, trained side by side on the same batches; their probabilities
    are averaged), and the post-hoc logit adjustment chosen in training:
    ``logit_adjustment`` (τ) and ``class_prior`` (the training classes' shares), so that
    prediction uses ``logits - τ·log(prior)``; and ``ngram_weight``, the weight ``w`` of the
    n-gram model blended with the network (0: none; see
    :mod:`~charrnn.classification.ngrams`), with ``rnn_temperature`` and ``ngram_temperature``,
    the calibration temperatures each part's log-probabilities are divided by before they are
    blended (:mod:`~charrnn.classification.calibration`). The defaults are those of
    checkpoints written before these settings existed (one direction, final state, no
    adjustment, no n-grams, no calibration), which load as they were.
    """

    num_classes: int = 2
    bidirectional: bool = False
    pooling: str = "final"
    ensemble: int = 1
    logit_adjustment: float = 0.0
    class_prior: list | None = None
    ngram_weight: float = 0.0
    rnn_temperature: float = 1.0
    ngram_temperature: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        check_integer("num_classes", self.num_classes, minimum=2)
        if not isinstance(self.bidirectional, bool):
            raise SettingError(f"--bidirectional must be true or false, got {self.bidirectional!r}")
        parse_pooling(self.pooling)
        check_integer("ensemble", self.ensemble)
        check_number("ngram_weight", self.ngram_weight, low=0.0, high=1.0)
        check_number("rnn_temperature", self.rnn_temperature, low=0.0, low_open=True)
        check_number("ngram_temperature", self.ngram_temperature, low=0.0, low_open=True)
        if self.class_prior is not None:
            prior = np.asarray(self.class_prior, dtype=float)
            if prior.shape != (self.num_classes,) or not np.all(prior > 0):
                raise SettingError(f"class_prior must hold {self.num_classes} positive shares, "
                                   f"got {self.class_prior!r}")

    @property
    def feature_size(self) -> int:
        """The size of the pooled vector the output layer reads."""
        directions = 2 if self.bidirectional else 1
        return len(parse_pooling(self.pooling)) * directions * self.hidden_size

    def logit_offset(self) -> np.ndarray | None:
        """``τ·log(prior)`` ``(C,)``, subtracted from the logits at prediction; None without adjustment."""
        if not self.logit_adjustment or self.class_prior is None:
            return None
        return self.logit_adjustment * np.log(np.asarray(self.class_prior, dtype=np.float64))


class CharClassifier(nn.Module):
    """Classify whole texts from their characters.

    ``ids`` ``(B, T)`` → embedding ``(B, T, E)`` → stack of ``num_layers`` cells run by
    :func:`~charrnn.unroll.dynamic_rnn` with each text's ``sequence_length`` (the fused
    kernels pack the batch, so padding is never read), or, ``bidirectional``, a forward and a
    backward stack run by :func:`~charrnn.unroll.bidirectional_dynamic_rnn` (outputs
    ``(B, T, 2H)``) → pooling over the valid positions only (``final``: the top layer's final
    ``h`` of each direction; ``mean``; ``max``; or several concatenated) ``(B, F)`` → dropout
    → dense → class logits ``(B, C)``. A text of length 0 pools to zeros.

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
        # Registered only when used, so that a one-way model's weights are named as before.
        self.rnn_backward = make_cell_stack(config) if config.bidirectional else None
        self.pooling = parse_pooling(config.pooling)
        self.dropout = Dropout(config.dropout)
        self.head = nn.Linear(config.feature_size, config.num_classes)
        # Members 2..K of an ensemble; member 1 is this module's own parts, named as a lone model's.
        self.members = nn.ModuleList([CharClassifier(replace(config, ensemble=1))
                                      for _ in range(config.ensemble - 1)]) if config.ensemble > 1 else None

    @staticmethod
    def expected_shapes(config: ClassifierConfig) -> dict[str, tuple[int, ...]]:
        """Shapes of the tensors that grow with the configuration's sizes, checked before building."""
        return {"embedding.weight": (config.vocab_size + 1, config.embedding_size),
                "head.weight": (config.num_classes, config.feature_size)}

    def features(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The pooled vector of each text ``(B, F)``, before dropout and the output layer."""
        embedded = self.embedding(ids)  # (B, T, E)
        if self.rnn_backward is None:
            outputs, state = dynamic_rnn(self.rnn, embedded, sequence_length=lengths)  # (B, T, H)
            finals = [_top_h(state)]
        else:
            (out_fw, out_bw), (state_fw, state_bw) = bidirectional_dynamic_rnn(
                self.rnn, self.rnn_backward, embedded, sequence_length=lengths)
            outputs = torch.cat([out_fw, out_bw], dim=2)  # (B, T, 2H)
            finals = [_top_h(state_fw), _top_h(state_bw)]  # each (B, H)
        pooled = []
        for kind in self.pooling:
            if kind == "final":
                pooled.extend(finals)
            elif kind == "mean":
                pooled.append(_masked_mean(outputs, lengths))
            else:
                pooled.append(_masked_max(outputs, lengths))
        return torch.cat(pooled, dim=1) if len(pooled) > 1 else pooled[0]  # (B, F)

    def member_logits(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Each ensemble member's logits ``(K, B, C)`` (``K = 1`` for a lone model)."""
        own = self.head(self.dropout(self.features(ids, lengths)))  # (B, C)
        if self.members is None:
            return own.unsqueeze(0)
        return torch.stack([own, *(member.member_logits(ids, lengths)[0] for member in self.members)])

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``ids`` ``(B, T)`` padded with anything, ``lengths`` ``(B,)`` → logits ``(B, C)``.

        An ensemble's are the log of its members' mean probabilities.
        """
        logits = self.member_logits(ids, lengths)  # (K, B, C)
        if logits.shape[0] == 1:
            return logits[0]
        return torch.logsumexp(torch.log_softmax(logits, dim=2), dim=0) - math.log(logits.shape[0])  # (B, C)


def _top_h(state) -> torch.Tensor:
    """The top layer's ``h`` ``(B, H)`` of a stack's final state."""
    top = state[-1]
    return top.h if isinstance(top, LSTMStateTuple) else top


def _masked_mean(outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean of ``outputs`` ``(B, T, D)`` over each row's first ``lengths`` steps ``(B, D)``; 0 for none.

    A running sum read at the last valid step depends on that prefix only, so padding (however
    long) cannot change a bit of it, as a reduction over all ``T`` steps could.
    """
    batch, steps, depth = outputs.shape
    if steps == 0:
        return outputs.new_zeros(batch, depth)
    running = outputs.cumsum(dim=1)  # (B, T, D)
    last = (lengths.clamp(min=1) - 1).view(batch, 1, 1).expand(batch, 1, depth)
    total = running.gather(1, last).squeeze(1)  # (B, D)
    total = torch.where((lengths > 0).unsqueeze(1), total, torch.zeros((), dtype=total.dtype, device=total.device))
    return total / lengths.clamp(min=1).unsqueeze(1).to(total.dtype)


def _masked_max(outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Maximum of ``outputs`` ``(B, T, D)`` over each row's valid steps ``(B, D)``; 0 for none."""
    batch, steps, depth = outputs.shape
    if steps == 0:
        return outputs.new_zeros(batch, depth)
    valid = (torch.arange(steps, device=outputs.device) < lengths.unsqueeze(1)).unsqueeze(2)  # (B, T, 1)
    masked = outputs.masked_fill(~valid, float("-inf")).amax(dim=1)  # (B, D)
    return torch.where((lengths > 0).unsqueeze(1), masked, torch.zeros((), dtype=masked.dtype, device=masked.device))


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
