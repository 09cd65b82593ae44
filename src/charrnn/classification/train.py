"""Training a :class:`~charrnn.classification.model.CharClassifier` on labelled texts.

The one :class:`~charrnn.training.loop.Trainer` of charrnn runs it, on a
:class:`ClassificationTask`: shuffle (or draw class-balanced) batches, pad each to its longest
text, cross-entropy (optionally weighted by class), one optimizer step per batch, with the
schedule, optimizer factory and device choice the language model uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch.nn import functional as F

from charrnn.checks import check_choice, check_integer, check_number, check_optional
from charrnn.classification.calibration import fit_temperature
from charrnn.classification.model import (
    CharClassifier,
    ClassifierConfig,
    encode_texts,
    pad_batch,
)
from charrnn.classification.ngrams import (
    DEFAULT_WEIGHT,
    WEIGHT_GRID,
    NgramModel,
    NgramSettings,
    check_ngram_weight,
    choose_settings,
)
from charrnn.classification.predict import TextClassifier, log_softmax
from charrnn.devices import num_threads, select_device
from charrnn.errors import CharRNNError, DataError, SettingError
from charrnn.model import ModelSettings
from charrnn.optim import make_optimizer
from charrnn.training.events import Callback
from charrnn.training.loop import Limits, Trainer
from charrnn.training.settings import OptimizationSettings
from charrnn.vocabulary import Vocabulary

CLASS_WEIGHTS = (None, "balanced")
#: Post-hoc logit adjustment, the logit-adjusted loss, or neither (Menon et al. 2021).
LOGIT_ADJUSTMENTS = ("none", "post-hoc", "loss")
#: The values of τ tried on the validation split when ``logit_adjustment='post-hoc'`` and ``tau`` is None.
TAU_GRID = tuple(np.round(np.arange(-1.0, 2.01, 0.25), 2).tolist())
#: The classifier's default shape: short texts want a smaller network than a corpus does. Set
#: from measurements on names-gender (docs/classify.md, "Defaults").
CLASSIFIER_SHAPE = ModelSettings(hidden_size=128, num_layers=1, embedding_size=64, dropout=0.3)
#: The classifier's default reading: both directions, their final states, an ensemble of two networks.
CLASSIFIER_READING = {"bidirectional": True, "pooling": "final", "ensemble": 2}


@dataclass(kw_only=True)
class TrainingOptions(OptimizationSettings):
    """How to train a classifier: the :class:`~charrnn.training.settings.OptimizationSettings`
    every charrnn model shares (with defaults for short texts), and:

    Attributes
    ----------
    epochs : int
        Passes over the training texts (the most; see ``patience``).
    class_weight : None, 'balanced' or dict
        ``'balanced'`` weights the loss of class ``k`` by ``n / (C · n_k)``
        (scikit-learn's :func:`~sklearn.utils.class_weight.compute_class_weight`); a dict maps
        labels to weights (1 for a label it leaves out).
    balanced_sampler : bool
        Draw each batch's texts with replacement, every class equally likely.
    validation_fraction : float in [0, 1)
        The share of the training texts (distinct texts, stratified, copies kept together) held
        out to choose the epoch whose weights are kept and τ; 0 keeps the last epoch and τ as given.
    patience : int or None
        Stop after this many epochs without a better validation score (None: run every epoch).
    logit_adjustment : 'none', 'post-hoc' or 'loss'
        ``'post-hoc'``: predict from ``logits - τ·log(prior)``, τ chosen on the validation
        split (from :data:`TAU_GRID`) unless ``tau`` is given; ``'loss'``: train on
        ``cross_entropy(logits + τ·log(prior))`` (τ = ``tau`` or 1) and predict from the logits.
    tau : float or None
        τ itself, for either adjustment.
    select_epoch : bool
        With a validation split, keep the weights of the epoch with the best validation score
        (True) or those of the last epoch (False; the split then chooses τ and ``w`` only).
    ngrams : bool
        Blend the RNN with a linear model on TF-IDF character n-grams
        (:mod:`~charrnn.classification.ngrams`): predict from
        ``(1 - w)·log p_rnn / T_rnn + w·log p_ngram / T_ngram`` (less ``τ·log(prior)``), ``w``
        chosen with τ, and each part's calibration temperature ``T`` fitted, on the validation
        split by a model fitted on the texts the RNN trains on, which is then refitted on all
        the training texts. Its settings are ``char_wb`` n-grams 2-5, ``C=10``
        (:class:`~charrnn.classification.ngrams.NgramSettings`), unless ``ngram_search``.
    ngram_search : bool
        Choose the n-gram model's analyzer, n-gram range and ``C`` from
        :data:`~charrnn.classification.ngrams.SETTINGS_GRID` by a 3-fold cross-validation of
        the texts the RNN trains on (macro-F1).
    ngram_weight : float in [0, 1] or None
        ``w`` itself; None chooses it on the validation split (or the out-of-fold predictions
        of ``cross_fit``) from :data:`~charrnn.classification.ngrams.WEIGHT_GRID` (with
        neither: :data:`~charrnn.classification.ngrams.DEFAULT_WEIGHT`).
    cross_fit : int
        ``K >= 2``: instead of a validation split, train ``K`` networks, each on the texts
        outside one of ``K`` stratified folds (copies of a text in one fold), score every
        training text with the network that did not see it, choose τ and ``w`` on those
        out-of-fold scores, and predict with the ``K`` networks together (an ensemble of
        ``K · ensemble``). 0: off.

    The learning rate falls step by step to a tenth of ``learning_rate`` (``decay``), as the
    language model's does; ``seed`` seeds the weights, the dropout masks, the shuffling, the
    sampler and the validation split, on generators of the run's own: PyTorch's global
    generator is left as it was.
    """

    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_steps: int = 0
    seed: int = 0
    epochs: int = 12
    class_weight: str | dict | None = "balanced"
    balanced_sampler: bool = False
    validation_fraction: float = 0.0
    patience: int | None = None
    logit_adjustment: str = "none"
    tau: float | None = None
    select_epoch: bool = True
    ngrams: bool = False
    ngram_search: bool = False
    ngram_weight: float | None = None
    cross_fit: int = 0

    def __post_init__(self):
        self.check_optimization_settings()
        check_integer("epochs", self.epochs)
        if not isinstance(self.class_weight, dict):
            check_choice("class_weight", self.class_weight, CLASS_WEIGHTS)
        else:
            for label, weight in self.class_weight.items():
                check_number(f"class_weight[{label!r}]", weight, low=0.0)
        if not isinstance(self.balanced_sampler, (bool, np.bool_)):
            raise SettingError(f"--balanced-sampler must be true or false, got {self.balanced_sampler!r}")
        check_number("validation_fraction", self.validation_fraction, low=0.0, high=1.0, high_open=True)
        check_optional(check_integer, "patience", self.patience)
        check_choice("logit_adjustment", self.logit_adjustment, LOGIT_ADJUSTMENTS)
        check_optional(check_number, "tau", self.tau)
        for name in ("select_epoch", "ngrams", "ngram_search"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise SettingError(f"--{name.replace('_', '-')} must be true or false, got {getattr(self, name)!r}")
        check_ngram_weight(self.ngram_weight)
        if check_integer("cross_fit", self.cross_fit, minimum=0) == 1:
            raise SettingError("--cross-fit must be 0 (off) or a number of folds >= 2, got 1")
        if self.cross_fit and self.validation_fraction > 0:
            raise SettingError("--cross-fit and --validation-fraction are two ways of choosing tau and the n-gram "
                               "weight; give one of them")


def balanced_class_weights(y: np.ndarray, num_classes: int) -> np.ndarray:
    """scikit-learn's ``'balanced'`` weight per class, ``n / (C · n_k)``; 1.0 for an absent class."""
    from sklearn.utils.class_weight import (
        compute_class_weight,  # here: the CLI starts a second sooner
    )

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
        raise DataError(f"got {len(texts)} texts but {len(labels)} labels")
    if not texts:
        raise DataError("no training texts")
    classes = sorted(set(labels)) if classes is None else list(classes)
    if len(classes) < 2:
        raise DataError(f"classification needs at least 2 classes, got {len(classes)}"
                        + (f" ({classes[0]!r})" if classes else ""))
    index = {label: k for k, label in enumerate(classes)}
    missing = sorted({str(label) for label in labels if label not in index})
    if missing:
        raise DataError(f"labels not among the classes: {', '.join(missing)}")
    return classes, np.array([index[label] for label in labels], dtype=np.int64)


def class_weight_vector(class_weight, y: np.ndarray, classes: list) -> np.ndarray | None:
    """The loss weight of each class ``(C,)`` for ``class_weight`` (None, 'balanced' or a dict)."""
    if class_weight is None:
        return None
    if class_weight == "balanced":
        return balanced_class_weights(y, len(classes))
    unknown = [label for label in class_weight if label not in classes]
    if unknown:
        raise DataError(f"class_weight names labels that are not classes: {', '.join(map(repr, unknown))}")
    return np.array([float(class_weight.get(label, 1.0)) for label in classes])


def class_prior(y: np.ndarray, num_classes: int) -> np.ndarray:
    """Each class's share of ``y`` ``(C,)``; a class absent from ``y`` counts as seen once, so log(prior) is finite."""
    counts = np.maximum(np.bincount(y, minlength=num_classes), 1).astype(np.float64)
    return counts / counts.sum()


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
    sample_weight : tensor ``(N,)``, optional
        Each text's weight; the loss is then the weighted mean ``Σ w_i l_i / Σ w_i`` with
        ``w_i = sample_weight[i] · class_weight[y_i]``.
    logit_offset : tensor ``(C,)``, optional
        Added to the logits in the loss (the logit-adjusted loss: ``τ·log(prior)``).
    """

    def __init__(self, encoded: list, y: np.ndarray, batch_size: int, balanced: bool, generator: torch.Generator,
                 device: torch.device, class_weight: torch.Tensor | None = None,
                 sample_weight: torch.Tensor | None = None, logit_offset: torch.Tensor | None = None):
        self.encoded, self.y, self.batch_size, self.balanced = encoded, y, batch_size, balanced
        self.generator, self.device, self.class_weight = generator, device, class_weight
        self.sample_weight, self.logit_offset = sample_weight, logit_offset
        self.targets = torch.from_numpy(y)
        self.steps_per_epoch = -(-len(y) // batch_size)
        self.examples_per_step = batch_size
        self.epoch, self.position, self.order = 0, 0, None

    def next_batch(self):
        """The next ``(ids (B, T), lengths (B,), targets (B,), weights (B,) or None)`` on the device."""
        if self.position == 0:
            self.order = _epoch_order(self.y, self.balanced, self.generator)
        rows = self.order[self.position * self.batch_size: (self.position + 1) * self.batch_size]
        self.position += 1
        if self.position == self.steps_per_epoch:
            self.epoch, self.position = self.epoch + 1, 0
        ids, lengths = pad_batch([self.encoded[i] for i in rows.tolist()], self.device)  # (B, T), (B,)
        weights = None if self.sample_weight is None else self.sample_weight[rows].to(self.device)
        return ids, lengths, self.targets[rows].to(self.device), weights

    def loss(self, network: torch.nn.Module, batch) -> torch.Tensor:
        """Cross-entropy of the batch; with class weights, PyTorch's weighted mean."""
        ids, lengths, targets, weights = batch
        # Each ensemble member learns on its own loss: (K, B, C) read as K·B examples.
        member_logits = network.member_logits(ids, lengths)  # (K, B, C)
        members = member_logits.shape[0]
        logits = member_logits.reshape(-1, member_logits.shape[2])  # (K·B, C)
        targets = targets.repeat(members)
        weights = None if weights is None else weights.repeat(members)
        if self.logit_offset is not None:
            logits = logits + self.logit_offset
        if weights is None:
            return F.cross_entropy(logits, targets, weight=self.class_weight)
        if self.class_weight is not None:
            weights = weights * self.class_weight[targets]
        losses = F.cross_entropy(logits, targets, reduction="none")  # (B,)
        return (losses * weights).sum() / weights.sum().clamp(min=torch.finfo(weights.dtype).tiny)


class _EpochReport(Callback):
    """One log line per epoch, and ``on_epoch_end(epoch, classifier)`` with the model in eval mode."""

    def __init__(self, epochs: int, classifier: TextClassifier, log, on_epoch_end):
        self.epochs, self.classifier, self.log, self.on_epoch_end = epochs, classifier, log, on_epoch_end
        self.started, self.total, self.batches = time.perf_counter(), 0.0, 0
        self.validation = ""  # what the epoch selection said of the epoch just ended

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


def macro_f1(y: np.ndarray, predicted: np.ndarray, num_classes: int) -> float:
    """Macro-F1 over classes ``0..num_classes-1`` (a class neither true nor predicted scores 0),
    as ``f1_score(y, predicted, labels=range(num_classes), average='macro', zero_division=0)``."""
    confusion = np.bincount(y * num_classes + predicted, minlength=num_classes * num_classes)
    confusion = confusion.reshape(num_classes, num_classes)
    true_positive = np.diag(confusion).astype(np.float64)
    denominator = confusion.sum(axis=0) + confusion.sum(axis=1)  # predicted + true, per class
    f1 = np.divide(2 * true_positive, denominator, out=np.zeros(num_classes), where=denominator > 0)
    return float(f1.mean())


#: Bootstrap resamples of the validation texts that measure the standard error of a gain in macro-F1.
GAIN_RESAMPLES = 200


def clear_gain(y: np.ndarray, predicted: np.ndarray, baseline: np.ndarray, num_classes: int,
               resamples: int = GAIN_RESAMPLES, seed: int = 0) -> bool:
    """Whether ``predicted`` beats ``baseline`` (each ``(N,)`` class ids for the texts of true
    classes ``y``) on macro-F1 by more than twice the gain's standard error, as a paired bootstrap
    of the texts (``resamples`` draws from a generator seeded with ``seed``) measures it."""
    gain = macro_f1(y, predicted, num_classes) - macro_f1(y, baseline, num_classes)
    if gain <= 0:
        return False
    generator, gains = np.random.default_rng(seed), []
    for _ in range(resamples):
        rows = generator.integers(0, len(y), size=len(y))  # (N,) one resample, with replacement
        gains.append(macro_f1(y[rows], predicted[rows], num_classes) - macro_f1(y[rows], baseline[rows], num_classes))
    return gain > 2 * float(np.std(gains))


class Choice(NamedTuple):
    """What :meth:`EpochSelection.score` chose for one set of scores."""

    key: tuple[float, float]  # (macro-F1, -cross-entropy) of the choice: higher is better
    weight: float  # w, the n-gram model's share of the blend (0: the RNN alone)
    tau: float  # τ of the post-hoc logit adjustment
    temperatures: tuple[float, float] = (1.0, 1.0)  # the RNN's and the n-gram model's (1: as trained)


class EpochSelection:
    """Scores each epoch on the validation split and keeps the best weights (and τ, and ``w``).

    The score is the validation macro-F1 of ``argmax(log p - τ·log(prior))``, at the best τ of
    ``taus`` (of equal scores, the τ nearest 0); ties go to the lower validation cross-entropy.
    With the n-gram model's validation log-probabilities ``ngram_log_proba`` ``(N_val, C)``,
    ``log p`` is the blend
    ``(1 - w)·log p_rnn / T_rnn + w·log p_ngram / T_ngram`` at the best ``(w, τ)`` of
    ``weights`` × ``taus``, each part first calibrated by the temperature that fits it best to
    these texts (:func:`~charrnn.classification.calibration.fit_temperature`), so that ``w``
    shares evidence between two models on one scale.
    A τ other than 0 is kept only when its gain over the best at τ = 0 is more than twice that
    gain's standard error (:func:`clear_gain`); otherwise τ = 0, the class-weighted model's own
    boundary: a few texts of a small class can move the validation macro-F1 by more than τ's
    real effect.
    ``select_epoch=False`` keeps the last epoch and its choice instead of the best epoch's.
    The test side of an outer split is never seen here: the validation texts are part of what
    the classifier was given to train on.
    """

    def __init__(self, classifier: TextClassifier, texts: list[str], y: np.ndarray, prior: np.ndarray, taus,
                 ngram_log_proba: np.ndarray | None = None, weights=(0.0,), select_epoch: bool = True):
        self.classifier, self.texts, self.y = classifier, texts, y
        self.log_prior, self.taus = np.log(prior), tuple(taus)
        self.zero_tau = self.taus.index(0.0) if 0.0 in self.taus else None  # τ = 0's place, for the τ rule
        self.ngram_log_proba, self.ngram_temperature = ngram_log_proba, 1.0
        if ngram_log_proba is not None:  # one n-gram model: its temperature and scaled scores, once
            self.ngram_temperature = fit_temperature(ngram_log_proba, y)
            self.ngram_log_proba = ngram_log_proba / self.ngram_temperature
        self.weights = tuple(weights) if ngram_log_proba is not None else (0.0,)
        self.select_epoch = select_epoch
        self.best: Choice | None = None
        self.best_epoch, self.best_state = 0, None
        self.history: list[dict] = []

    def score(self, log_proba: np.ndarray) -> Choice:
        """The best choice for the network's validation log-probabilities ``log_proba`` ``(N_val, C)``."""
        rows, num_classes = np.arange(len(self.y)), log_proba.shape[1]
        temperatures = (1.0, 1.0)
        if self.ngram_log_proba is not None:
            temperatures = (fit_temperature(log_proba, self.y), self.ngram_temperature)
            log_proba = log_proba / temperatures[0]
        best = unadjusted = None  # (choice, predictions): over all τ, and at τ = 0
        for weight in self.weights:
            blended = log_proba if weight == 0 else (1 - weight) * log_proba + weight * self.ngram_log_proba
            loss = float(-log_softmax(blended)[rows, self.y].mean())
            predictions = [(blended - tau * self.log_prior).argmax(axis=1) for tau in self.taus]  # each (N_val,)
            scores = [macro_f1(self.y, predicted, num_classes) for predicted in predictions]
            top = max(range(len(scores)), key=lambda i: (scores[i], -abs(self.taus[i])))  # ties: the smallest |τ|
            choice = Choice((scores[top], -loss), float(weight), float(self.taus[top]), temperatures)
            if best is None or choice.key > best[0].key:
                best = (choice, predictions[top])
            if self.zero_tau is not None:
                choice = Choice((scores[self.zero_tau], -loss), float(weight), 0.0, temperatures)
                if unadjusted is None or choice.key > unadjusted[0].key:
                    unadjusted = (choice, predictions[self.zero_tau])
        if unadjusted is not None and best[0].tau != 0.0 and not clear_gain(self.y, best[1], unadjusted[1],
                                                                             num_classes):
            best = unadjusted
        return best[0]

    def __call__(self, epoch: int) -> bool:
        """Score the model after ``epoch``; True when it is the best so far."""
        choice = self.score(log_softmax(self.classifier.raw_logits(self.texts)))  # (N_val, C)
        record = {"epoch": epoch, "val_macro_f1": float(choice.key[0]), "val_loss": -choice.key[1], "tau": choice.tau}
        if self.ngram_log_proba is not None:
            record.update(ngram_weight=choice.weight, temperatures=list(choice.temperatures))
        self.history.append(record)
        improved = self.best is None or choice.key > self.best.key
        if improved or not self.select_epoch:
            self.best, self.best_epoch = choice, epoch
            if self.select_epoch:
                self.best_state = {name: tensor.detach().clone()
                                   for name, tensor in self.classifier.model.state_dict().items()}
        return improved


def _validation_split(texts: list[str], y: np.ndarray, fraction: float, seed: int):
    """Indices ``(train, validation)``: a stratified hold-out of distinct texts; None when too small to make one."""
    from charrnn.classification.splits import (
        SplitError,
        StratifiedDuplicateShuffleSplit,
    )

    if fraction <= 0:
        return None
    try:
        return next(StratifiedDuplicateShuffleSplit(1, test_size=fraction, random_state=seed).split(texts, y))
    except SplitError:
        return None


def _cross_fit_folds(texts: list[str], y: np.ndarray, folds: int, seed: int) -> list | None:
    """The ``(rows, held_out)`` of a stratified K-fold of ``texts``, copies of a text in one fold
    (scikit-learn's ``StratifiedGroupKFold``; a class of fewer than ``folds`` texts is missing
    from some folds, which cross-fitting allows); None with fewer than ``folds`` distinct texts
    or a fold whose other folds hold a single class."""
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    from charrnn.classification.splits import duplicate_groups

    groups = duplicate_groups(texts)
    if len(set(groups.tolist())) < folds:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "the least populated class has only n members"
        splits = list(StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(texts, y, groups))
    if any(len(np.unique(y[rows])) < 2 for rows, _ in splits):
        return None
    return splits


def _forked_generators(device: torch.device):
    """A block in which PyTorch's global generators may be seeded: their states come back after it."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices, device_type="cuda")


def train_classifier(texts, labels, classes=None, *, cell: str = CLASSIFIER_SHAPE.cell,
                     hidden_size: int = CLASSIFIER_SHAPE.hidden_size, num_layers: int = CLASSIFIER_SHAPE.num_layers,
                     embedding_size: int = CLASSIFIER_SHAPE.embedding_size, dropout: float = CLASSIFIER_SHAPE.dropout,
                     forget_bias: float = CLASSIFIER_SHAPE.forget_bias,
                     bidirectional: bool = CLASSIFIER_READING["bidirectional"],
                     pooling: str = CLASSIFIER_READING["pooling"], ensemble: int = CLASSIFIER_READING["ensemble"],
                     options: TrainingOptions | None = None,
                     sample_weight=None, log: Callable[[str], None] | None = None,
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
    bidirectional, pooling, ensemble :
        How a text is read and pooled, and by how many networks
        (:class:`~charrnn.classification.model.ClassifierConfig`).
    options : TrainingOptions, optional
    sample_weight : sequence of float ``(N,)``, optional
        Each text's weight in the loss (with the class weights, multiplied).
    log : callable, optional
        Receives one line per epoch (mean loss, time, the validation score).
    on_epoch_end : callable, optional
        Called as ``on_epoch_end(epoch, classifier)`` after each epoch (e.g. to score a
        validation set); the model is in evaluation mode during the call.

    With ``options.validation_fraction`` above 0, that share of the texts is held out (a
    stratified split of the distinct texts), each epoch is scored on it, and the classifier
    returned carries the weights of the best epoch (or the last, ``select_epoch=False``) and,
    with post-hoc logit adjustment, the best τ, and with ``ngrams`` the best blend weight.
    Data too small for such a split trains on everything and keeps the last epoch.
    ``options.cross_fit`` chooses τ and the weight on out-of-fold scores instead (see
    :class:`TrainingOptions`); ``on_epoch_end`` is then called for each of its networks' epochs.
    """
    options = options or TrainingOptions()
    texts = list(texts)
    bad = next((i for i, text in enumerate(texts) if not isinstance(text, str)), None)
    if bad is not None:
        raise DataError(f"texts must be strings; text {bad} is {type(texts[bad]).__name__} {texts[bad]!r}")
    classes, y = _class_ids(texts, list(labels), classes)
    weights = None
    if sample_weight is not None:
        weights = np.asarray(sample_weight, dtype=np.float64)
        if weights.shape != (len(texts),) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise DataError(f"sample_weight must hold {len(texts)} finite weights >= 0, got shape "
                            f"{list(weights.shape)}")
        if not weights.sum() > 0:
            raise DataError("sample_weight must contain at least one non-zero number")
    device = select_device(options.device)
    shape = {"cell": cell, "hidden_size": hidden_size, "num_layers": num_layers, "embedding_size": embedding_size,
             "dropout": dropout, "forget_bias": forget_bias, "bidirectional": bool(bidirectional),
             "pooling": pooling, "ensemble": ensemble}
    folds = _cross_fit_folds(texts, y, options.cross_fit, options.seed) if options.cross_fit else None
    if folds is not None:
        return _train_cross_fitted(texts, y, classes, weights, shape, folds, options, device, log, on_epoch_end)
    if options.cross_fit and log is not None:
        log(f"cross-fit: too few texts for {options.cross_fit} folds; one network on every text")
    split = _validation_split(texts, y, options.validation_fraction, options.seed)
    train_rows = np.arange(len(texts)) if split is None else split[0]
    prior = class_prior(y[train_rows], len(classes))
    ngram_choice = _choose_ngrams(options, texts, y, classes, weights, train_rows, split) if options.ngrams else None
    vocabulary = Vocabulary("".join(texts[i] for i in train_rows))
    config = ClassifierConfig(vocab_size=vocabulary.size, num_classes=len(classes), **shape)
    with _forked_generators(device):
        torch.manual_seed(options.seed)  # the weights and dropout masks; the caller's generator state comes back after
        generator = torch.Generator().manual_seed(options.seed)
        model = CharClassifier(config).to(device)
        classifier = TextClassifier(model, vocabulary, classes)
        task = _make_task(options, vocabulary, texts, y, classes, weights, train_rows, prior, generator, device)
        selection = None
        if split is not None:
            selection = EpochSelection(classifier, [texts[i] for i in split[1]], y[split[1]], prior, _taus(options),
                                       None if ngram_choice is None else ngram_choice["validation_log_proba"],
                                       _ngram_weights(options), options.select_epoch)
        _run_epochs(model, task, optimizer_for(model, options, device), options, device, classifier, selection,
                    log, on_epoch_end)
    choice = Choice((float("nan"), float("nan")), DEFAULT_WEIGHT if options.ngram_weight is None
                    else options.ngram_weight, options.tau if options.tau is not None else 0.0)
    if selection is not None and selection.best is not None:
        if selection.best_state is not None:
            model.load_state_dict(selection.best_state)
        choice = selection.best
        classifier.selection = {"epoch": selection.best_epoch, "tau": choice.tau, "history": selection.history}
    chosen_on = None if split is None else f"{len(split[1])} validation texts"
    return _finish(classifier, options, texts, y, classes, weights, prior, choice, ngram_choice,
                   {"validation_texts": 0 if split is None else len(split[1])}, chosen_on, log)


def _finish(classifier, options, texts, y, classes, weights, prior, choice: Choice, ngram_choice, record,
            chosen_on, log) -> TextClassifier:
    """Set the chosen τ and temperatures, refit the n-gram model on every training text, record the choices."""
    config = classifier.model.config
    if options.logit_adjustment == "post-hoc" and choice.tau:
        config.logit_adjustment, config.class_prior = float(choice.tau), prior.tolist()
    if ngram_choice is not None:
        # τ and w were chosen on the calibrated scores, so prediction calibrates as they were.
        config.rnn_temperature = choice.temperatures[0]
        if choice.weight > 0:  # refitted on every training text, the validation split's too
            classifier.ngrams = NgramModel.fit(texts, y, len(classes), ngram_choice["settings"],
                                               _ngram_class_weight(options, y, classes), weights)
            config.ngram_weight, config.ngram_temperature = float(choice.weight), choice.temperatures[1]
        record = {"ngram_weight": float(choice.weight) if classifier.ngrams is not None else 0.0,
                  "temperatures": list(choice.temperatures),
                  "ngrams": ngram_choice["settings"].to_dict(), "ngram_cv": ngram_choice["cv"], **record}
        if log is not None:
            log(f"n-grams: {ngram_choice['settings'].describe()}, weight {record['ngram_weight']:g}"
                + ("" if chosen_on is None else f", tau {choice.tau:g}, temperatures RNN "
                   f"{choice.temperatures[0]:.3g} and n-grams {choice.temperatures[1]:.3g} (chosen on {chosen_on})"))
    if ngram_choice is not None or options.cross_fit:
        classifier.selection = {**(classifier.selection or {}), **record}
    classifier.model.eval()
    return classifier


def _train_cross_fitted(texts, y, classes, weights, shape: dict, folds, options, device, log, on_epoch_end):
    """A network per fold of ``folds``, each trained on the other folds; τ and ``w`` chosen on the
    out-of-fold scores of every text; the networks joined into one ensemble (see TrainingOptions)."""
    from dataclasses import replace

    num_classes, rows_all = len(classes), np.arange(len(texts))
    prior = class_prior(y, num_classes)
    ngram_choice = _choose_ngrams(options, texts, y, classes, weights, rows_all, None) if options.ngrams else None
    vocabulary = Vocabulary("".join(texts))  # every network reads the same ids, so that they can be joined
    member = ClassifierConfig(vocab_size=vocabulary.size, num_classes=num_classes, **shape)
    out_of_fold = np.zeros((len(texts), num_classes))  # log p of each text, by the network that did not see it
    ngram_out_of_fold = None if ngram_choice is None else np.zeros((len(texts), num_classes))
    states = []
    for fold, (rows, held_out) in enumerate(folds):
        fold_log = None if log is None else (lambda line, fold=fold: log(f"network {fold + 1}/{len(folds)}: {line}"))
        with _forked_generators(device):
            torch.manual_seed(options.seed + fold)
            generator = torch.Generator().manual_seed(options.seed + fold)
            model = CharClassifier(member).to(device)
            classifier = TextClassifier(model, vocabulary, classes)
            task = _make_task(options, vocabulary, texts, y, classes, weights, rows, class_prior(y[rows], num_classes),
                              generator, device)
            _run_epochs(model, task, optimizer_for(model, options, device), options, device, classifier, None,
                        fold_log, on_epoch_end)
        model.eval()
        held_out_texts = [texts[i] for i in held_out]
        out_of_fold[held_out] = log_softmax(classifier.raw_logits(held_out_texts))
        states.append(model.state_dict())
        if ngram_out_of_fold is not None:
            fold_model = NgramModel.fit([texts[i] for i in rows], y[rows], num_classes, ngram_choice["settings"],
                                        _ngram_class_weight(options, y[rows], classes),
                                        None if weights is None else weights[rows])
            ngram_out_of_fold[held_out] = fold_model.log_proba(held_out_texts)
    config = replace(member, ensemble=len(folds) * member.ensemble)
    with _forked_generators(device):
        model = CharClassifier(config).to(device)  # its initial weights are replaced at once
    model.load_state_dict(_join_members(states, member.ensemble))
    classifier = TextClassifier(model, vocabulary, classes)
    scorer = EpochSelection(classifier, texts, y, prior, _taus(options), ngram_out_of_fold, _ngram_weights(options))
    choice = scorer.score(out_of_fold)
    classifier.selection = {"epoch": options.epochs, "tau": choice.tau, "cross_fit": len(folds),
                            "out_of_fold_macro_f1": float(choice.key[0]), "out_of_fold_loss": -float(choice.key[1])}
    return _finish(classifier, options, texts, y, classes, weights, prior, choice, ngram_choice, {},
                   f"the out-of-fold scores of {len(texts)} texts", log)


def _join_members(states: list[dict], per_network: int) -> dict:
    """The state dict of one ensemble holding every member of ``states`` (each an ensemble of
    ``per_network``), in order: member 0 is the module's own parts, member ``g`` ``members.{g-1}``."""
    joined = {}
    for network, state in enumerate(states):
        for position in range(per_network):
            source = "" if position == 0 else f"members.{position - 1}."
            index = network * per_network + position
            target = "" if index == 0 else f"members.{index - 1}."
            for name, tensor in state.items():
                if position == 0 and not name.startswith("members."):
                    joined[target + name] = tensor
                elif position > 0 and name.startswith(source):
                    joined[target + name[len(source):]] = tensor
    return joined


def _taus(options: TrainingOptions) -> tuple:
    """The τ values a validation split (or out-of-fold scores) chooses among."""
    if options.logit_adjustment == "post-hoc" and options.tau is None:
        return TAU_GRID
    return ((options.tau or 0.0) if options.logit_adjustment == "post-hoc" else 0.0,)


def _ngram_weights(options: TrainingOptions) -> tuple:
    """The n-gram blend weights a validation split (or out-of-fold scores) chooses among."""
    return WEIGHT_GRID if options.ngram_weight is None else (options.ngram_weight,)


def _ngram_class_weight(options: TrainingOptions, y: np.ndarray, classes: list) -> np.ndarray | None:
    """The n-gram model's class weights: the RNN's, or ``'balanced'`` where the RNN is balanced
    another way (the balanced sampler, the logit-adjusted loss)."""
    if options.class_weight is None and (options.balanced_sampler or options.logit_adjustment == "loss"):
        return class_weight_vector("balanced", y, classes)
    return class_weight_vector(options.class_weight, y, classes)


def _choose_ngrams(options, texts, y, classes, weights, train_rows, split) -> dict | None:
    """The n-gram settings (with ``ngram_search``, chosen by cross-validating the RNN's training
    rows), and (with a validation split) the validation texts' log-probabilities from a model
    fitted on those rows.

    None when the training rows hold a single class (no linear model to fit).
    """
    rows_y = y[train_rows]
    if len(np.unique(rows_y)) < 2:
        return None
    rows_texts = [texts[i] for i in train_rows]
    rows_weights = None if weights is None else weights[train_rows]
    class_weight = _ngram_class_weight(options, rows_y, classes)
    settings, cv = NgramSettings(), []
    if options.ngram_search:
        settings, cv = choose_settings(rows_texts, rows_y, len(classes), class_weight, rows_weights, options.seed)
    validation = None
    if split is not None:
        model = NgramModel.fit(rows_texts, rows_y, len(classes), settings, class_weight, rows_weights)
        validation = model.log_proba([texts[i] for i in split[1]])  # (N_val, C)
    return {"settings": settings, "cv": cv, "validation_log_proba": validation}


def optimizer_for(model: torch.nn.Module, options: TrainingOptions, device: torch.device):
    """Adam (AdamW with weight decay) over ``model``'s parameters, as every charrnn model trains."""
    return make_optimizer("adam", model.parameters(), options.learning_rate, options.weight_decay, device)


def _make_task(options, vocabulary, texts, y, classes, weights, rows, prior, generator, device) -> ClassificationTask:
    """The :class:`ClassificationTask` of the training ``rows``, with the weights and offsets the options ask for."""
    class_weight = class_weight_vector(options.class_weight, y[rows], classes)
    class_weight = None if class_weight is None else torch.as_tensor(class_weight, dtype=torch.float32,
                                                                     device=device)
    sample_weight = None if weights is None else torch.as_tensor(weights[rows], dtype=torch.float32)
    offset = None
    if options.logit_adjustment == "loss":
        tau = 1.0 if options.tau is None else options.tau
        offset = torch.as_tensor(tau * np.log(prior), dtype=torch.float32, device=device)
    return ClassificationTask(encode_texts(vocabulary, [texts[i] for i in rows]), y[rows], options.batch_size,
                              options.balanced_sampler, generator, device, class_weight, sample_weight, offset)


def _run_epochs(model, task, optimizer, options, device, classifier, selection, log, on_epoch_end) -> None:
    """Run the trainer one epoch at a time, scoring each on the validation split; stop early on ``patience``."""
    report = _EpochReport(options.epochs, classifier, log, on_epoch_end)
    trainer = Trainer(model, task, optimizer, options.schedule, Limits(epochs=options.epochs), device,
                      grad_clip=options.grad_clip, amp=options.amp, callbacks=[report])
    since_best = 0
    with num_threads(options.num_threads):
        while trainer.stop_reason is None:
            trainer.advance(task.steps_per_epoch)
            if trainer.stop_reason == "diverged":
                raise CharRNNError(f"training the classifier stopped at step {trainer.step + 1}: "
                                   f"{trainer.stop_detail}", exit_code=1)
            if selection is None:
                continue
            model.eval()
            improved = selection(task.epoch)
            model.train()
            since_best = 0 if improved else since_best + 1
            if log is not None:
                last = selection.history[-1]
                log(f"  validation: macro-F1 {last['val_macro_f1']:.4f} (tau {last['tau']:g}), "
                    f"loss {last['val_loss']:.4f}" + (" *" if improved else ""))
            if options.patience is not None and since_best >= options.patience:
                break
