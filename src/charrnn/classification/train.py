"""Training a :class:`~charrnn.classification.model.CharClassifier` on labelled texts.

The one :class:`~charrnn.training.loop.Trainer` of charrnn runs it, on a
:class:`ClassificationTask`: shuffle (or draw class-balanced) batches, pad each to its longest
text, cross-entropy (optionally weighted by class), one optimizer step per batch, with the
schedule, optimizer factory and device choice the language model uses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from charrnn.checks import check_choice, check_integer
from charrnn.classification.model import CharClassifier, ClassifierConfig, encode_texts, pad_batch
from charrnn.classification.predict import TextClassifier
from charrnn.devices import num_threads, select_device
from charrnn.errors import CharRNNError
from charrnn.model import ModelSettings
from charrnn.optim import make_optimizer
from charrnn.training.events import Callback
from charrnn.training.loop import Limits, Trainer
from charrnn.training.settings import OptimizationSettings
from charrnn.vocabulary import Vocabulary

CLASS_WEIGHTS = (None, "balanced")
#: The classifier's default shape: short texts want a smaller network than a corpus does.
CLASSIFIER_SHAPE = ModelSettings(hidden_size=128, num_layers=1, embedding_size=32)


@dataclass(kw_only=True)
class TrainingOptions(OptimizationSettings):
    """How to train a classifier: the :class:`~charrnn.training.settings.OptimizationSettings`
    every charrnn model shares (with defaults for short texts), and:

    Attributes
    ----------
    epochs : int
        Passes over the training texts.
    class_weight : None or 'balanced'
        ``'balanced'`` weights the loss of class ``k`` by ``n / (C · n_k)``
        (scikit-learn's :func:`~sklearn.utils.class_weight.compute_class_weight`).
    balanced_sampler : bool
        Draw each batch's texts with replacement, every class equally likely.

    The learning rate falls step by step to a tenth of ``learning_rate`` (``decay``), as the
    language model's does; ``seed`` seeds the weights, the shuffling and the sampler.
    """

    batch_size: int = 64
    learning_rate: float = 3e-3
    warmup_steps: int = 0
    seed: int = 0
    epochs: int = 10
    class_weight: str | None = None
    balanced_sampler: bool = False

    def __post_init__(self):
        self.check_optimization_settings()
        check_integer("epochs", self.epochs)
        check_choice("class_weight", self.class_weight, CLASS_WEIGHTS)


def balanced_class_weights(y: np.ndarray, num_classes: int) -> np.ndarray:
    """scikit-learn's ``'balanced'`` weight per class, ``n / (C · n_k)``; 1.0 for an absent class."""
    from sklearn.utils.class_weight import compute_class_weight  # here: the CLI starts a second sooner

    weights = np.ones(num_classes)
    present = np.unique(y)
    weights[present] = compute_class_weight("balanced", classes=present, y=y)
    return weights


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


class ClassificationTask:
    """Whole texts and their classes, in shuffled (or class-balanced) batches padded to their longest.

    Parameters
    ----------
    encoded : list of id arrays
    y : int64 array ``(N,)``
    batch_size : int
    balanced : bool
        Draw each epoch's texts with replacement, every class equally likely.
    generator : torch.Generator
        Draws the order of each epoch.
    device : torch.device
    class_weight : tensor ``(C,)``, optional
    """

    def __init__(self, encoded: list, y: np.ndarray, batch_size: int, balanced: bool, generator: torch.Generator,
                 device: torch.device, class_weight: torch.Tensor | None = None):
        self.encoded, self.y, self.batch_size, self.balanced = encoded, y, batch_size, balanced
        self.generator, self.device, self.class_weight = generator, device, class_weight
        self.targets = torch.from_numpy(y)
        self.steps_per_epoch = -(-len(y) // batch_size)
        self.examples_per_step = batch_size
        self.epoch, self.position, self.order = 0, 0, None

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The next ``(ids (B, T), lengths (B,), targets (B,))`` on the device."""
        if self.position == 0:
            self.order = _epoch_order(self.y, self.balanced, self.generator)
        rows = self.order[self.position * self.batch_size: (self.position + 1) * self.batch_size]
        self.position += 1
        if self.position == self.steps_per_epoch:
            self.epoch, self.position = self.epoch + 1, 0
        ids, lengths = pad_batch([self.encoded[i] for i in rows.tolist()], self.device)  # (B, T), (B,)
        return ids, lengths, self.targets[rows].to(self.device)

    def loss(self, network: torch.nn.Module, batch) -> torch.Tensor:
        """Cross-entropy of the batch; with class weights, PyTorch's weighted mean."""
        ids, lengths, targets = batch
        return F.cross_entropy(network(ids, lengths), targets, weight=self.class_weight)  # logits (B, C)


class _EpochReport(Callback):
    """One log line per epoch, and ``on_epoch_end(epoch, classifier)`` with the model in eval mode."""

    def __init__(self, epochs: int, classifier: TextClassifier, log, on_epoch_end):
        self.epochs, self.classifier, self.log, self.on_epoch_end = epochs, classifier, log, on_epoch_end
        self.started, self.total, self.batches = time.perf_counter(), 0.0, 0

    def on_step(self, trainer, event) -> None:
        self.total, self.batches = self.total + event.loss, self.batches + 1
        if not event.epoch_ended:
            return
        if self.log is not None:
            self.log(f"epoch {event.epoch}/{self.epochs}: loss {self.total / self.batches:.4f} "
                     f"({time.perf_counter() - self.started:.1f} s)")
        if self.on_epoch_end is not None:
            trainer.model.eval()
            self.on_epoch_end(event.epoch, self.classifier)
            trainer.model.train()
        self.started, self.total, self.batches = time.perf_counter(), 0.0, 0


def train_classifier(texts, labels, classes=None, *, cell: str = CLASSIFIER_SHAPE.cell,
                     hidden_size: int = CLASSIFIER_SHAPE.hidden_size, num_layers: int = CLASSIFIER_SHAPE.num_layers,
                     embedding_size: int = CLASSIFIER_SHAPE.embedding_size, dropout: float = CLASSIFIER_SHAPE.dropout,
                     forget_bias: float = CLASSIFIER_SHAPE.forget_bias, options: TrainingOptions | None = None,
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
    cell, hidden_size, num_layers, embedding_size, dropout, forget_bias :
        The model's shape (:class:`~charrnn.model.ModelSettings`; defaults :data:`CLASSIFIER_SHAPE`).
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
    device = select_device(options.device)
    torch.manual_seed(options.seed)
    generator = torch.Generator().manual_seed(options.seed)
    vocabulary = Vocabulary("".join(texts))
    config = ClassifierConfig(vocab_size=vocabulary.size, cell=cell, hidden_size=hidden_size,
                              num_layers=num_layers, embedding_size=embedding_size, dropout=dropout,
                              forget_bias=forget_bias, num_classes=len(classes))
    model = CharClassifier(config).to(device)
    optimizer = make_optimizer("adam", model.parameters(), options.learning_rate, options.weight_decay, device)
    weight = None
    if options.class_weight == "balanced":
        weight = torch.as_tensor(balanced_class_weights(y, len(classes)), dtype=torch.float32, device=device)
    task = ClassificationTask(encode_texts(vocabulary, texts), y, options.batch_size, options.balanced_sampler,
                              generator, device, weight)
    classifier = TextClassifier(model, vocabulary, classes)
    trainer = Trainer(model, task, optimizer, options.schedule, Limits(epochs=options.epochs), device,
                      grad_clip=options.grad_clip, amp=options.amp,
                      callbacks=[_EpochReport(options.epochs, classifier, log, on_epoch_end)])
    with num_threads(options.num_threads):
        trainer.advance(trainer.total_steps)
    if trainer.stop_reason == "diverged":
        raise CharRNNError(f"training the classifier stopped at step {trainer.step + 1}: {trainer.stop_detail}",
                           exit_code=1)
    model.eval()
    return classifier
