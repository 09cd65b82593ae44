"""A trained classifier with its vocabulary and class names: probabilities and top-k labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from charrnn.classification.model import CharClassifier, encode_texts, pad_batch
from charrnn.vocabulary import Vocabulary


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
    """

    model: CharClassifier
    vocabulary: Vocabulary
    classes: list

    @property
    def device(self) -> torch.device:
        """Where the model's weights live."""
        return self.model.head.weight.device

    def predict_proba(self, texts, batch_size: int = 256) -> np.ndarray:
        """Class probabilities ``(N, C)`` for each text, in evaluation mode (no dropout)."""
        texts = list(texts)
        encoded = encode_texts(self.vocabulary, texts)
        # Texts of similar length share a batch, so little time goes on padding.
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
        probabilities = np.zeros((len(texts), len(self.classes)), dtype=np.float32)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(order), batch_size):
                    rows = order[start: start + batch_size]
                    ids, lengths = pad_batch([encoded[i] for i in rows], self.device)  # (B, T), (B,)
                    logits = self.model(ids, lengths)  # (B, C)
                    probabilities[rows] = torch.softmax(logits.float(), dim=1).cpu().numpy()
        finally:
            self.model.train(was_training)
        return probabilities

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
