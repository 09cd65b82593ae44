"""Training a :class:`~charrnn.classification.model.CharClassifier` on labelled texts.

The loop is plain: shuffle (or draw class-balanced) batches, pad each to its longest text,
cross-entropy (optionally weighted by class), one optimizer step per batch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from charrnn.classification.model import CharClassifier, ClassifierConfig, encode_texts, pad_batch
from charrnn.classification.predict import TextClassifier
from charrnn.errors import CharRNNError
from charrnn.vocabulary import Vocabulary

CLASS_WEIGHTS = (None, "balanced")
DECAYS = ("cosine", "linear", "constant")


@dataclass
class TrainingOptions:
    """How to train: the loop's settings, independent of the model's shape.

    Attributes
    ----------
    epochs : int
        Passes over the training texts.
    batch_size : int
    learning_rate : float
        Adam's peak learning rate (AdamW when ``weight_decay`` is above 0).
    decay : str
        ``'cosine'``, ``'linear'`` or ``'constant'``: how the rate falls, step by step, to a
        tenth of ``learning_rate`` at the end of training (as the language model's trainer).
    weight_decay : float
        Decoupled weight decay.
    grad_clip : float
        Clip the gradient's global norm to this; 0 turns clipping off.
    class_weight : None or 'balanced'
        ``'balanced'`` weights the loss of class ``k`` by ``n / (C · n_k)``
        (scikit-learn's :func:`~sklearn.utils.class_weight.compute_class_weight`).
    balanced_sampler : bool
        Draw each batch's texts with replacement, every class equally likely.
    seed : int
        Seeds the weights' initialisation, the shuffling and the sampler.
    device : str
        ``'cpu'``, ``'cuda'``, ``'cuda:N'``, ``'mps'`` or ``'auto'``.
    """

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 3e-3
    decay: str = "cosine"
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    class_weight: str | None = None
    balanced_sampler: bool = False
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise CharRNNError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if not self.learning_rate > 0:
            raise CharRNNError(f"learning-rate must be positive, got {self.learning_rate!r}")
        if self.decay not in DECAYS:
            raise CharRNNError(f"decay must be one of {', '.join(DECAYS)}, got {self.decay!r}")
        for name in ("weight_decay", "grad_clip"):
            if not getattr(self, name) >= 0:
                raise CharRNNError(f"{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)!r}")
        if self.class_weight not in CLASS_WEIGHTS:
            raise CharRNNError(f"class-weight must be 'balanced' or none, got {self.class_weight!r}")


def resolve_device(name: str) -> torch.device:
    """``'auto'`` (CUDA when present, else CPU) or a device name, checked to be usable."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CharRNNError(f"unknown device {name!r}; expected cpu, cuda, cuda:N, mps or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CharRNNError(f"device {name!r} asked for, but this PyTorch sees no CUDA GPU")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise CharRNNError(f"device {name!r} asked for, but only {torch.cuda.device_count()} GPU(s) exist")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise CharRNNError("device 'mps' asked for, but this PyTorch sees no Apple GPU")
    return device


def balanced_class_weights(y: np.ndarray, num_classes: int) -> np.ndarray:
    """scikit-learn's ``'balanced'`` weight per class, ``n / (C · n_k)``; 1.0 for an absent class."""
    from sklearn.utils.class_weight import compute_class_weight  # here: the CLI starts a second sooner

    weights = np.ones(num_classes)
    present = np.unique(y)
    weights[present] = compute_class_weight("balanced", classes=present, y=y)
    return weights


def learning_rate_at(options: TrainingOptions, progress: float) -> float:
    """The rate after ``progress`` (0 → 1) of training: from the peak down to a tenth of it."""
    peak, floor = options.learning_rate, options.learning_rate / 10
    if options.decay == "cosine":
        return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    if options.decay == "linear":
        return peak - (peak - floor) * progress
    return peak


def _epoch_order(y: np.ndarray, balanced: bool, generator: torch.Generator) -> torch.Tensor:
    """The example indices of one epoch: a permutation, or a class-balanced draw of as many."""
    if not balanced:
        return torch.randperm(len(y), generator=generator)
    counts = np.bincount(y)
    probability = torch.as_tensor(1.0 / counts[y], dtype=torch.float64)  # each class sums to 1
    return torch.multinomial(probability, len(y), replacement=True, generator=generator)


def _class_ids(texts: list[str], labels: list, classes) -> tuple[list, np.ndarray]:
    """The class names (sorted distinct labels unless given) and each text's class id ``(N,)``."""
    if len(texts) != len(labels):
        raise CharRNNError(f"got {len(texts)} texts but {len(labels)} labels")
    if not texts:
        raise CharRNNError("no training texts")
    classes = sorted(set(labels)) if classes is None else list(classes)
    index = {label: k for k, label in enumerate(classes)}
    missing = sorted({str(label) for label in labels if label not in index})
    if missing:
        raise CharRNNError(f"labels not among the classes: {', '.join(missing)}")
    return classes, np.array([index[label] for label in labels], dtype=np.int64)


def train_classifier(texts, labels, classes=None, *, cell: str = "lstm", hidden_size: int = 128,
                     num_layers: int = 1, embedding_size: int = 32, dropout: float = 0.0,
                     options: TrainingOptions | None = None,
                     log: Callable[[str], None] | None = None,
                     on_epoch_end: Callable[[int, TextClassifier], None] | None = None) -> TextClassifier:
    """Train a classifier of ``texts`` into ``labels`` and return it ready to predict.

    Parameters
    ----------
    texts : sequence of str
    labels : sequence
        One label per text (any hashable values, e.g. strings or ints).
    classes : sequence, optional
        All class names in id order; the sorted distinct labels when omitted.
    cell, hidden_size, num_layers, embedding_size, dropout :
        The model's shape, as in :class:`~charrnn.classification.model.ClassifierConfig`.
    options : TrainingOptions, optional
    log : callable, optional
        Receives one line per epoch (mean loss, time).
    on_epoch_end : callable, optional
        Called as ``on_epoch_end(epoch, classifier)`` after each epoch (e.g. to score a
        validation set); the model is in evaluation mode during the call.
    """
    options = options or TrainingOptions()
    texts = [str(text) for text in texts]
    classes, y = _class_ids(texts, list(labels), classes)
    device = resolve_device(options.device)
    torch.manual_seed(options.seed)
    generator = torch.Generator().manual_seed(options.seed)
    vocabulary = Vocabulary("".join(texts))
    config = ClassifierConfig(vocab_size=vocabulary.size, cell=cell, hidden_size=hidden_size,
                              num_layers=num_layers, embedding_size=embedding_size, dropout=dropout,
                              num_classes=len(classes))
    model = CharClassifier(config).to(device)
    optimizer_class = torch.optim.AdamW if options.weight_decay > 0 else torch.optim.Adam
    optimizer = optimizer_class(model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
    weight = None
    if options.class_weight == "balanced":
        weight = torch.as_tensor(balanced_class_weights(y, len(classes)), dtype=torch.float32, device=device)

    classifier = TextClassifier(model, vocabulary, classes)
    encoded = encode_texts(vocabulary, texts)
    targets = torch.from_numpy(y)
    total_steps, step = options.epochs * math.ceil(len(y) / options.batch_size), 0
    model.train()
    for epoch in range(1, options.epochs + 1):
        started, total_loss, batches = time.perf_counter(), 0.0, 0
        order = _epoch_order(y, options.balanced_sampler, generator)
        for start in range(0, len(order), options.batch_size):
            rows = order[start: start + options.batch_size]
            ids, lengths = pad_batch([encoded[i] for i in rows.tolist()], device)  # (B, T), (B,)
            logits = model(ids, lengths)  # (B, C)
            # With weights, PyTorch divides by the batch's summed weights: a weighted mean.
            loss = F.cross_entropy(logits, targets[rows].to(device), weight=weight)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate_at(options, step / total_steps)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if options.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), options.grad_clip)
            optimizer.step()
            step += 1
            total_loss += loss.item()
            batches += 1
        if log is not None:
            log(f"epoch {epoch}/{options.epochs}: loss {total_loss / batches:.4f} "
                f"({time.perf_counter() - started:.1f} s)")
        if on_epoch_end is not None:
            model.eval()
            on_epoch_end(epoch, classifier)
            model.train()
    model.eval()
    return classifier
