"""A scikit-learn estimator around the classifier, for ``cross_val_score``, pipelines and grid search."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
)

from charrnn.classification.train import CLASSIFIER_READING as _READING
from charrnn.classification.train import CLASSIFIER_SHAPE as _SHAPE
from charrnn.classification.train import TrainingOptions, train_classifier
from charrnn.errors import DataError, SettingError

_OPTIONS = TrainingOptions()  # the defaults, declared once there


def check_texts(X, name: str = "X") -> list[str]:
    """``X`` as a list of str, refused as scikit-learn's text vectorizers refuse it.

    A bare string (which would be read as one text per character), a 2-D array, and elements
    that are not strings (numbers, None, bytes) are a :class:`~charrnn.errors.DataError`, a
    ``ValueError``.
    """
    if isinstance(X, (str, bytes)):
        hint = f"; wrap it in a list: [{X!r}]" if len(X) < 40 else ""
        raise DataError(f"{name} must be an iterable of texts (str), got a single {type(X).__name__}{hint}")
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) != 1:
        raise DataError(f"{name} must be a 1-D sequence of texts (str), got an array of shape {tuple(shape)}")
    try:
        texts = list(X)
    except TypeError:
        raise DataError(f"{name} must be an iterable of texts (str), got {type(X).__name__}") from None
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(f"{name} must hold texts (str); element {index} is {type(text).__name__} {text!r}")
    return [str(text) for text in texts]  # np.str_ -> str


def _check_targets(y, count: int) -> np.ndarray:
    """``y`` as a 1-D array of class labels: continuous, multilabel or multi-output targets refused."""
    if y is None:
        raise DataError("requires y to be passed, but the target y is None (a classifier needs the labels)")
    kind = type_of_target(y, input_name="y")
    if kind not in ("binary", "multiclass"):
        raise DataError(f"Unknown label type: y must be class labels (binary or multiclass), got {kind!r} targets")
    y = column_or_1d(y, warn=True)  # a column (n, 1): scikit-learn's DataConversionWarning, then raveled
    check_consistent_length(np.empty(count), y)
    return y


def seed_from(random_state) -> int:
    """A seed for the run from ``random_state``: an int as it is, else one drawn from
    :func:`sklearn.utils.check_random_state` (None: NumPy's global generator; a ``RandomState``)."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, (bool, np.bool_)):
        if random_state < 0:
            raise DataError(f"random_state must be a non-negative integer, None or a RandomState, "
                            f"got {random_state!r}")
        return int(random_state)
    try:
        generator = check_random_state(random_state)
    except ValueError:
        raise DataError(f"random_state must be an integer, None or a numpy RandomState, "
                        f"got {random_state!r}") from None
    return int(generator.randint(np.iinfo(np.int32).max))


class CharRNNClassifier(ClassifierMixin, BaseEstimator):
    """A character-level RNN text classifier with scikit-learn's ``fit`` / ``predict`` interface.

    ``X`` is a sequence of texts (str), ``y`` their labels. The parameters are those of
    :func:`~charrnn.classification.train.train_classifier` and
    :class:`~charrnn.classification.train.TrainingOptions`. ``random_state`` (an int, None or
    a ``RandomState``) seeds the run on its own generators: PyTorch's global generator is left
    as it was. ``class_weight`` is None, ``'balanced'`` or a dict ``{label: weight}``;
    ``fit`` takes ``sample_weight``. With ``validation_fraction`` above 0 the epoch kept (and
    τ, for ``logit_adjustment='post-hoc'``) is chosen on that share of the training texts only.
    ``ngrams=True`` blends the RNN with a linear model on TF-IDF character n-grams, its weight
    ``ngram_weight`` chosen on that same share unless given (``select_epoch=False`` keeps the
    last epoch while the share chooses τ and the weight). ``cross_fit=K`` chooses τ and the
    weight on out-of-fold scores instead: ``K`` networks, each trained without one of ``K``
    folds, which then predict together.

    Attributes
    ----------
    classes_ : ndarray
        The sorted class labels; column ``k`` of :meth:`predict_proba` is ``classes_[k]``.
    classifier_ : TextClassifier
        The trained model (save it with :func:`~charrnn.classification.save_classifier`).

    Examples
    --------
    >>> from sklearn.model_selection import cross_val_score
    >>> from charrnn.classification import StratifiedDuplicateKFold
    >>> texts = ["ab", "aab", "aaab", "ba", "bba", "bbba"] * 4
    >>> labels = ["a", "a", "a", "b", "b", "b"] * 4
    >>> model = CharRNNClassifier(hidden_size=8, embedding_size=4, epochs=30, batch_size=8,
    ...                           validation_fraction=0.0, device="cpu")
    >>> scores = cross_val_score(model, texts, labels, cv=StratifiedDuplicateKFold(2, random_state=0))
    >>> len(scores)
    2
    """

    def __init__(self, cell: str = _SHAPE.cell, hidden_size: int = _SHAPE.hidden_size,
                 num_layers: int = _SHAPE.num_layers, embedding_size: int = _SHAPE.embedding_size,
                 dropout: float = _SHAPE.dropout, bidirectional: bool = _READING["bidirectional"],
                 pooling: str = _READING["pooling"], ensemble: int = _READING["ensemble"],
                 epochs: int = _OPTIONS.epochs,
                 batch_size: int = _OPTIONS.batch_size, learning_rate: float = _OPTIONS.learning_rate,
                 decay: str = _OPTIONS.decay, weight_decay: float = _OPTIONS.weight_decay,
                 grad_clip: float = _OPTIONS.grad_clip, class_weight=_OPTIONS.class_weight,
                 balanced_sampler: bool = _OPTIONS.balanced_sampler,
                 validation_fraction: float = _OPTIONS.validation_fraction, patience: int | None = _OPTIONS.patience,
                 logit_adjustment: str = _OPTIONS.logit_adjustment, tau: float | None = _OPTIONS.tau,
                 select_epoch: bool = _OPTIONS.select_epoch, ngrams: bool = _OPTIONS.ngrams,
                 ngram_search: bool = _OPTIONS.ngram_search, ngram_weight: float | None = _OPTIONS.ngram_weight,
                 cross_fit: int = _OPTIONS.cross_fit,
                 random_state=_OPTIONS.seed, device: str = _OPTIONS.device):
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.embedding_size = embedding_size
        self.dropout = dropout
        self.bidirectional = bidirectional
        self.pooling = pooling
        self.ensemble = ensemble
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.decay = decay
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.class_weight = class_weight
        self.balanced_sampler = balanced_sampler
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.logit_adjustment = logit_adjustment
        self.tau = tau
        self.select_epoch = select_epoch
        self.ngrams = ngrams
        self.ngram_search = ngram_search
        self.ngram_weight = ngram_weight
        self.cross_fit = cross_fit
        self.random_state = random_state
        self.device = device

    def __sklearn_tags__(self):
        """Texts in, not a 2-D array of numbers: scikit-learn's numeric estimator checks do not apply."""
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.target_tags.required = True
        return tags

    def fit(self, X, y, sample_weight=None):
        """Train on texts ``X`` with labels ``y`` (and per-text ``sample_weight``); returns ``self``."""
        texts = check_texts(X)
        y = _check_targets(y, len(texts))
        if not texts:
            raise DataError("X holds no texts: nothing to train on")
        classes = np.unique(y)
        if len(classes) < 2:
            raise DataError(f"y holds one class only ({_plain(classes[0])!r}); a classifier needs at least 2")
        weights = None
        if sample_weight is not None:  # a number weighs every text alike, as in scikit-learn
            weights = np.broadcast_to(np.asarray(sample_weight, dtype=np.float64), (len(texts),)) \
                if np.ndim(sample_weight) == 0 else np.asarray(sample_weight, dtype=np.float64)
        class_weight = self.class_weight
        if isinstance(class_weight, dict):
            class_weight = {_plain(label): weight for label, weight in class_weight.items()}
        options = TrainingOptions(epochs=self.epochs, batch_size=self.batch_size,
                                  learning_rate=self.learning_rate, decay=self.decay,
                                  weight_decay=self.weight_decay, grad_clip=self.grad_clip,
                                  class_weight=class_weight, balanced_sampler=self.balanced_sampler,
                                  validation_fraction=self.validation_fraction, patience=self.patience,
                                  logit_adjustment=self.logit_adjustment, tau=self.tau,
                                  select_epoch=self.select_epoch, ngrams=self.ngrams,
                                  ngram_search=self.ngram_search, ngram_weight=self.ngram_weight,
                                  cross_fit=self.cross_fit, seed=seed_from(self.random_state), device=self.device)
        classifier = train_classifier(
            texts, [_plain(label) for label in y], [_plain(label) for label in classes], cell=self.cell,
            hidden_size=self.hidden_size, num_layers=self.num_layers, embedding_size=self.embedding_size,
            dropout=self.dropout, bidirectional=_flag("bidirectional", self.bidirectional),
            pooling=self.pooling, ensemble=self.ensemble, options=options, sample_weight=weights)
        self.classes_, self.classifier_ = classes, classifier
        return self

    def predict_log_proba(self, X) -> np.ndarray:
        """Log class probabilities ``(N, C)``, columns in the order of ``classes_``."""
        check_is_fitted(self, "classifier_")
        return self.classifier_.predict_log_proba(check_texts(X))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities ``(N, C)``, columns in the order of ``classes_``."""
        check_is_fitted(self, "classifier_")
        return self.classifier_.predict_proba(check_texts(X))

    def decision_function(self, X) -> np.ndarray:
        """The logits ``(N, C)`` predictions come from (after any logit adjustment)."""
        check_is_fitted(self, "classifier_")
        logits = self.classifier_.logits(check_texts(X))
        return logits[:, 1] - logits[:, 0] if len(self.classes_) == 2 else logits

    def predict(self, X) -> np.ndarray:
        """The most probable label of each text."""
        check_is_fitted(self, "classifier_")
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def _plain(label):
    """A NumPy scalar label as the Python value it holds (str, int, ...); others as they are."""
    return label.item() if isinstance(label, np.generic) else label


def _flag(name: str, value) -> bool:
    """A bool setting: True/False (NumPy's too); anything else a ``ValueError`` naming the setting."""
    if not isinstance(value, (bool, np.bool_)):
        raise SettingError(f"--{name.replace('_', '-')} must be true or false, got {value!r}")
    return bool(value)
