"""A scikit-learn estimator around the classifier, for ``cross_val_score``, pipelines and grid search."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from charrnn.classification.train import CLASSIFIER_SHAPE as _SHAPE
from charrnn.classification.train import TrainingOptions, train_classifier

_OPTIONS = TrainingOptions()  # the defaults, declared once there


class CharRNNClassifier(ClassifierMixin, BaseEstimator):
    """A character-level RNN text classifier with scikit-learn's ``fit`` / ``predict`` interface.

    ``X`` is a sequence of texts (str), ``y`` their labels. The parameters are those of
    :func:`~charrnn.classification.train.train_classifier` and
    :class:`~charrnn.classification.train.TrainingOptions`; ``random_state`` is the seed.

    Examples
    --------
    >>> from sklearn.model_selection import cross_val_score
    >>> from charrnn.classification import StratifiedDuplicateKFold
    >>> texts = ["ab", "aab", "aaab", "ba", "bba", "bbba"] * 4
    >>> labels = ["a", "a", "a", "b", "b", "b"] * 4
    >>> model = CharRNNClassifier(hidden_size=8, embedding_size=4, epochs=30, batch_size=8)
    >>> scores = cross_val_score(model, texts, labels, cv=StratifiedDuplicateKFold(2, random_state=0))
    >>> len(scores)
    2
    """

    def __init__(self, cell: str = _SHAPE.cell, hidden_size: int = _SHAPE.hidden_size,
                 num_layers: int = _SHAPE.num_layers, embedding_size: int = _SHAPE.embedding_size,
                 dropout: float = _SHAPE.dropout, epochs: int = _OPTIONS.epochs, batch_size: int = _OPTIONS.batch_size,
                 learning_rate: float = _OPTIONS.learning_rate, decay: str = _OPTIONS.decay,
                 weight_decay: float = _OPTIONS.weight_decay, grad_clip: float = _OPTIONS.grad_clip,
                 class_weight: str | None = _OPTIONS.class_weight, balanced_sampler: bool = _OPTIONS.balanced_sampler,
                 random_state: int = _OPTIONS.seed, device: str = _OPTIONS.device):
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.embedding_size = embedding_size
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.decay = decay
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.class_weight = class_weight
        self.balanced_sampler = balanced_sampler
        self.random_state = random_state
        self.device = device

    def fit(self, X, y):
        """Train on texts ``X`` with labels ``y``; returns ``self``."""
        self.classes_ = np.unique(np.asarray(y))
        options = TrainingOptions(epochs=self.epochs, batch_size=self.batch_size,
                                  learning_rate=self.learning_rate, decay=self.decay,
                                  weight_decay=self.weight_decay, grad_clip=self.grad_clip,
                                  class_weight=self.class_weight, balanced_sampler=self.balanced_sampler,
                                  seed=self.random_state, device=self.device)
        self.classifier_ = train_classifier(
            list(X), np.asarray(y).tolist(), self.classes_.tolist(), cell=self.cell,
            hidden_size=self.hidden_size, num_layers=self.num_layers,
            embedding_size=self.embedding_size, dropout=self.dropout, options=options)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities ``(N, C)``, columns in the order of ``classes_``."""
        check_is_fitted(self, "classifier_")
        return self.classifier_.predict_proba(list(X))

    def predict(self, X) -> np.ndarray:
        """The most probable label of each text."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
