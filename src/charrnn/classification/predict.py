"""A trained classifier with its vocabulary and class names: probabilities, top-k labels, and
whole files of texts labelled into CSV, a chunk at a time."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np
import torch

from charrnn.classification.model import CharClassifier, encode_texts, pad_batch
from charrnn.classification.ngrams import NgramModel
from charrnn.vocabulary import Vocabulary


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of ``logits`` ``(N, C)``."""
    if not len(logits):
        return logits
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


@dataclass
class TextClassifier:
    """What a trained classifier needs to read new texts.

    Attributes
    ----------
    model : CharClassifier
    vocabulary : Vocabulary
        The characters seen in training; others read as "unknown".
    classes : list
        The class names; ``classes[k]`` is the label of logit ``k``.
    ngrams : NgramModel or None
        The linear model on character n-grams blended with the network, with weight
        ``model.config.ngram_weight`` (see :meth:`logits`).
    """

    model: CharClassifier
    vocabulary: Vocabulary
    classes: list
    ngrams: NgramModel | None = field(default=None, compare=False, repr=False)
    #: How training chose the kept epoch, τ and the n-gram blend (None without a validation split or n-grams).
    selection: dict | None = field(default=None, compare=False, repr=False)

    @property
    def device(self) -> torch.device:
        """Where the model's weights live."""
        return self.model.head.weight.device

    def raw_logits(self, texts, batch_size: int = 256) -> np.ndarray:
        """The network's logits ``(N, C)`` (float64) for each text, in evaluation mode (no dropout),
        before any logit adjustment."""
        texts = list(texts)
        encoded = encode_texts(self.vocabulary, texts)
        # Texts of similar length share a batch, so little time goes on padding.
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
        logits = np.zeros((len(texts), len(self.classes)), dtype=np.float64)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(order), batch_size):
                    rows = order[start: start + batch_size]
                    ids, lengths = pad_batch([encoded[i] for i in rows], self.device)  # (B, T), (B,)
                    logits[rows] = self.model(ids, lengths).double().cpu().numpy()  # (B, C)
        finally:
            self.model.train(was_training)
        return logits

    def logits(self, texts, batch_size: int = 256) -> np.ndarray:
        """The logits ``(N, C)`` predictions come from: :meth:`raw_logits` divided by the
        calibration temperature ``T_rnn`` (1 unless training fitted one), or with an n-gram model
        the blend ``(1 - w)·log_softmax(raw_logits / T_rnn) + w·log p_ngram / T_ngram``, less
        ``τ·log(prior)`` when training chose a post-hoc logit adjustment (see ``model.config``)."""
        texts, config = list(texts), self.model.config
        logits = self.raw_logits(texts, batch_size) / config.rnn_temperature  # x / 1.0 is x, bit for bit
        if self.ngrams is not None and config.ngram_weight > 0:
            ngram = self.ngrams.log_proba(texts) / config.ngram_temperature
            logits = (1 - config.ngram_weight) * log_softmax(logits) + config.ngram_weight * ngram
        offset = config.logit_offset()
        return logits if offset is None else logits - offset

    def predict_log_proba(self, texts, batch_size: int = 256) -> np.ndarray:
        """Log class probabilities ``(N, C)``: the log-softmax of :meth:`logits`."""
        return log_softmax(self.logits(texts, batch_size))

    def predict_proba(self, texts, batch_size: int = 256) -> np.ndarray:
        """Class probabilities ``(N, C)`` for each text (rows sum to 1)."""
        return np.exp(self.predict_log_proba(texts, batch_size))

    def predict(self, texts, batch_size: int = 256) -> list:
        """The most probable class of each text."""
        best = self.predict_proba(texts, batch_size).argmax(axis=1)
        return [self.classes[k] for k in best]

    def top_k(self, texts, k: int = 1, batch_size: int = 256) -> list[list[tuple[object, float]]]:
        """For each text, its ``k`` most probable classes as ``(label, probability)``, best first."""
        probabilities = self.predict_proba(texts, batch_size)
        k = max(1, min(int(k), len(self.classes)))
        best = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        return [[(self.classes[j], float(row[j])) for j in columns]
                for row, columns in zip(probabilities, best)]

    def unknown_characters(self, texts) -> list[str]:
        """The distinct characters of ``texts`` that training never saw, in order of appearance."""
        seen: dict[str, None] = {}
        for text in texts:
            for char, _ in self.vocabulary.unknown_characters(text).items():
                seen.setdefault(char, None)
        return list(seen)


def write_predictions_csv(classifier: TextClassifier, texts: Iterable[str], handle: TextIO,
                          chunk_size: int = 4096, batch_size: int = 256) -> int:
    """Label ``texts`` and write CSV to ``handle``: ``text,label,p_<class>...``; returns the rows written.

    ``texts`` may be any iterable (a file's lines, a generator): it is read ``chunk_size``
    texts at a time and each chunk is written before the next is read, so a file of any size
    needs the memory of one chunk. Probabilities are written with 6 significant digits.
    """
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(["text", "label", *(f"p_{label}" for label in classifier.classes)])
    written, chunk = 0, []
    for text in texts:
        chunk.append(text)
        if len(chunk) == chunk_size:
            written += _write_chunk(classifier, chunk, writer, batch_size)
            chunk = []
    if chunk:
        written += _write_chunk(classifier, chunk, writer, batch_size)
    return written


def _write_chunk(classifier: TextClassifier, texts: list[str], writer, batch_size: int) -> int:
    probabilities = classifier.predict_proba(texts, batch_size)  # (N, C)
    best = probabilities.argmax(axis=1)
    for text, row, k in zip(texts, probabilities, best):
        writer.writerow([text, classifier.classes[k], *(f"{p:.6g}" for p in row)])
    return len(texts)


def label_file(classifier: TextClassifier, source, destination, chunk_size: int = 4096,
               batch_size: int = 256) -> int:
    """Label each non-blank line of the UTF-8 file ``source`` into the CSV file ``destination``.

    The Python form of ``charrnn classify predict CHECKPOINT --file SOURCE --output DESTINATION``:
    lines are read and written a chunk at a time (see :func:`write_predictions_csv`), and
    ``destination`` appears whole or not at all. Returns the number of texts labelled.
    """
    import io

    from charrnn.files import atomic_stream

    def lines(handle):
        for line in handle:
            if line.strip():
                yield line.strip()

    with open(source, encoding="utf-8") as handle, atomic_stream(destination) as binary:
        text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
        count = write_predictions_csv(classifier, lines(handle), text, chunk_size, batch_size)
        text.flush()
        text.detach()
    return count
