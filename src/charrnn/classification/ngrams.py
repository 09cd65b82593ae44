"""The n-gram component: a linear model on TF-IDF character n-grams, blended with the RNN.

The RNN reads characters in order; what it learns slowly from little data is lexical: which
words and names occur. Counts of character n-grams carry that directly. So beside the RNN (the
"deep" part) a classifier can hold a linear model on TF-IDF character n-grams (the "wide"
part), built from scikit-learn's :class:`~sklearn.feature_extraction.text.TfidfVectorizer` and
:class:`~sklearn.linear_model.LogisticRegression`, and predict from the blend

    log p = (1 - w) · log p_rnn / T_rnn + w · log p_ngram / T_ngram      (then - τ·log prior, as ever)

``w`` and τ are chosen on the classifier's validation split or out-of-fold scores (see
:func:`charrnn.classification.train.train_classifier`), after each part's calibration
temperature ``T`` is fitted on the same scores (:mod:`~charrnn.classification.calibration`).
The n-gram model is ``char_wb`` n-grams 2-5 with ``C=10`` (:class:`NgramSettings`), or, with
``ngram_search``, the analyzer, n-gram range and ``C`` of :data:`SETTINGS_GRID` that a
cross-validation of the texts the RNN trains on scores best (:func:`choose_settings`).

A fitted model is kept as plain arrays (:class:`NgramModel`): its terms (JSON), idf vector,
coefficients and intercepts (safetensors). Its scores are computed here from those arrays, and
its vectorizer is rebuilt from the terms and idf, so a checkpoint never holds (or unpickles) a
scikit-learn object.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from charrnn.checks import check_choice, check_integer, check_number
from charrnn.errors import CharRNNError, SettingError
from charrnn.files import CheckpointError

#: The analyzers of scikit-learn's vectorizer that read characters.
ANALYZERS = ("char", "char_wb")
#: The blend weights ``w`` tried on the validation split when ``ngram_weight`` is None.
WEIGHT_GRID = tuple(np.round(np.arange(0.0, 1.001, 0.1), 2).tolist())
#: ``w`` when it cannot be chosen (no validation split) and was not given.
DEFAULT_WEIGHT = 0.5
#: Folds of the cross-validation that chooses the n-gram settings.
SETTINGS_FOLDS = 3
#: The floor of an n-gram log-probability (a class the linear model never saw in training).
LOG_FLOOR = float(np.log(1e-12))
#: What the saved tensors are called, in ``ngrams.safetensors``.
TENSORS = ("idf", "coef", "intercept")


@dataclass(frozen=True)
class NgramSettings:
    """One n-gram model: the vectorizer's ``analyzer`` and ``ngram_range``, the regression's ``C``.

    The rest is scikit-learn's defaults (lower-cased text, smoothed idf, rows l2-normalised; the
    lbfgs solver), with the classifier's class weights.
    """

    analyzer: str = "char_wb"
    ngram_range: tuple[int, int] = (2, 5)
    C: float = 10.0

    def __post_init__(self):
        check_choice("analyzer", self.analyzer, ANALYZERS)
        pair = self.ngram_range
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise SettingError(f"ngram_range must be two integers (low, high), got {pair!r}")
        low = check_integer("ngram_range low", pair[0], minimum=1, maximum=32, as_flag=False)
        high = check_integer("ngram_range high", pair[1], minimum=low, maximum=32, as_flag=False)
        object.__setattr__(self, "ngram_range", (low, high))
        object.__setattr__(self, "C", check_number("C", self.C, low=0.0, low_open=True))

    def to_dict(self) -> dict:
        return {"analyzer": self.analyzer, "ngram_range": list(self.ngram_range), "C": self.C}

    def describe(self) -> str:
        return f"{self.analyzer} {self.ngram_range[0]}-{self.ngram_range[1]}, C={self.C:g}"


#: The settings tried: the tuned baseline's grid of bench/bench_classify.py (``char`` and
#: ``char_wb`` n-grams 1-4 and 2-5, C in {1, 10}), the class weights being the classifier's.
SETTINGS_GRID = tuple(NgramSettings(analyzer, ngram_range, C) for analyzer in ("char_wb", "char")
                      for ngram_range in ((2, 5), (1, 4)) for C in (1.0, 10.0))


def _vectorizer(settings: NgramSettings, vocabulary=None):
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer=settings.analyzer, ngram_range=settings.ngram_range, vocabulary=vocabulary,
                           dtype=np.float64)


class NgramModel:
    """A fitted linear model on TF-IDF character n-grams, held as arrays.

    Parameters
    ----------
    settings : NgramSettings
    terms : list of str
        The n-grams, in feature order.
    idf : float32 array ``(V,)``
    coef : float32 array ``(R, V)``
        One row per class the regression saw (``R = 1`` when it saw two: the second's score).
    intercept : float32 array ``(R,)``
    classes : list of int
        The class ids (columns of the classifier) the regression saw, increasing.
    num_classes : int
        The classifier's number of classes ``C``; a class the regression never saw gets
        log-probability :data:`LOG_FLOOR`.
    """

    def __init__(self, settings: NgramSettings, terms: list[str], idf: np.ndarray, coef: np.ndarray,
                 intercept: np.ndarray, classes: list[int], num_classes: int):
        self.settings, self.terms, self.classes, self.num_classes = settings, terms, list(classes), num_classes
        self.idf = np.asarray(idf, dtype=np.float32)
        self.coef = np.asarray(coef, dtype=np.float32)
        self.intercept = np.asarray(intercept, dtype=np.float32)
        self.vectorizer = _vectorizer(settings, {term: i for i, term in enumerate(terms)})
        self.vectorizer.idf_ = self.idf.astype(np.float64)

    @classmethod
    def fit(cls, texts: list[str], y: np.ndarray, num_classes: int, settings: NgramSettings,
            class_weight: np.ndarray | None = None, sample_weight: np.ndarray | None = None) -> NgramModel:
        """Fit the vectorizer and a logistic regression (weighted by ``class_weight`` ``(C,)`` and
        ``sample_weight`` ``(N,)``) on ``texts`` with class ids ``y``."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        vectorizer = _vectorizer(settings)
        features = vectorizer.fit_transform(texts)  # (N, V) sparse
        present = np.unique(y)
        if len(present) < 2:
            raise CharRNNError(f"the n-gram model needs texts of at least 2 classes, got {len(present)}")
        weights = None if class_weight is None else {int(k): float(class_weight[k]) for k in present}
        regression = LogisticRegression(C=settings.C, max_iter=3000, class_weight=weights)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # lbfgs at C=10 on many n-grams: close enough
            regression.fit(features, y, sample_weight=sample_weight)
        terms = [None] * len(vectorizer.vocabulary_)
        for term, index in vectorizer.vocabulary_.items():
            terms[index] = term
        return cls(settings, terms, vectorizer.idf_, regression.coef_, regression.intercept_,
                   [int(k) for k in regression.classes_], num_classes)

    def log_proba(self, texts) -> np.ndarray:
        """Log class probabilities ``(N, C)`` (float64), as the regression's ``predict_log_proba``."""
        texts = list(texts)
        result = np.full((len(texts), self.num_classes), LOG_FLOOR)
        if not texts:
            return result
        features = self.vectorizer.transform(texts)  # (N, V) sparse, float64
        scores = np.asarray(features @ self.coef.astype(np.float64).T) + self.intercept.astype(np.float64)  # (N, R)
        if len(self.classes) == 2:  # one score: the second class's log-odds
            log_p = -np.logaddexp(0.0, np.concatenate([scores, -scores], axis=1))  # log σ(-s), log σ(s)
        else:
            shifted = scores - scores.max(axis=1, keepdims=True)
            log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        result[:, self.classes] = np.maximum(log_p, LOG_FLOOR)
        return result

    # -- saving ---------------------------------------------------------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        """What ``ngrams.safetensors`` holds: ``idf`` ``(V,)``, ``coef`` ``(R, V)``, ``intercept`` ``(R,)``."""
        return {"idf": torch.from_numpy(self.idf.copy()), "coef": torch.from_numpy(self.coef.copy()),
                "intercept": torch.from_numpy(self.intercept.copy())}

    def to_json(self) -> dict:
        """What ``ngrams.json`` holds: the settings, the class ids the regression saw, the terms."""
        return {"settings": self.settings.to_dict(), "classes": self.classes, "terms": self.terms}

    @classmethod
    def from_saved(cls, values, tensors: dict[str, torch.Tensor], num_classes: int, json_file, tensor_file):
        """Rebuild a model from ``ngrams.json`` ``values`` and ``ngrams.safetensors`` ``tensors``,
        checking each against the other; any defect is one :class:`CheckpointError`."""
        if not isinstance(values, dict) or not isinstance(values.get("settings"), dict) \
                or not isinstance(values.get("terms"), list) or not isinstance(values.get("classes"), list):
            raise CheckpointError(f"{json_file}: expected {{\"settings\": {{...}}, \"classes\": [...], "
                                  f"\"terms\": [...]}}")
        try:
            settings = NgramSettings(**values["settings"])
        except (CharRNNError, TypeError) as error:
            raise CheckpointError(f"{json_file}: bad n-gram settings ({error})") from None
        terms, classes = values["terms"], values["classes"]
        if not terms or not all(isinstance(term, str) and term for term in terms) or len(set(terms)) != len(terms):
            raise CheckpointError(f"{json_file}: \"terms\" must be distinct non-empty strings")
        if (len(classes) < 2 or not all(isinstance(k, int) and not isinstance(k, bool) for k in classes)
                or classes != sorted(set(classes)) or classes[0] < 0 or classes[-1] >= num_classes):
            raise CheckpointError(f"{json_file}: \"classes\" must be increasing class ids below {num_classes}, "
                                  f"at least 2")
        if sorted(tensors) != sorted(TENSORS):
            raise CheckpointError(f"{tensor_file}: expected the tensors {', '.join(TENSORS)}, found "
                                  f"{', '.join(sorted(tensors)) or 'none'}")
        rows = 1 if len(classes) == 2 else len(classes)
        expected = {"idf": (len(terms),), "coef": (rows, len(terms)), "intercept": (rows,)}
        for name, shape in expected.items():
            tensor = tensors[name]
            if tuple(tensor.shape) != shape:
                raise CheckpointError(f"{tensor_file}: tensor {name} has shape {list(tensor.shape)}, "
                                      f"{json_file} implies {list(shape)}")
            if not tensor.is_floating_point() or not bool(torch.isfinite(tensor).all()):
                raise CheckpointError(f"{tensor_file}: tensor {name} must hold finite floating-point values")
        if not bool((tensors["idf"] > 0).all()):
            raise CheckpointError(f"{tensor_file}: tensor idf must be positive")
        as_array = {name: tensors[name].to(torch.float32).numpy() for name in TENSORS}
        return cls(settings, terms, as_array["idf"], as_array["coef"], as_array["intercept"], classes, num_classes)


def choose_settings(texts: list[str], y: np.ndarray, num_classes: int, class_weight: np.ndarray | None,
                    sample_weight: np.ndarray | None, seed: int, grid=SETTINGS_GRID,
                    folds: int = SETTINGS_FOLDS) -> tuple[NgramSettings, list[dict]]:
    """The n-gram settings of ``grid`` with the best cross-validated macro-F1 on ``texts``.

    A stratified ``folds``-fold cross-validation of ``texts`` (copies of a text in one fold),
    the first of the best in ``grid`` order on a tie. Too few texts of a class for the folds:
    ``grid[0]``, unscored. Returns the settings and each one's mean score.
    """
    from sklearn.metrics import f1_score

    from charrnn.classification.splits import SplitError, StratifiedDuplicateKFold

    if len(grid) == 1:
        return grid[0], []
    try:
        splits = list(StratifiedDuplicateKFold(folds, shuffle=True, random_state=seed).split(texts, y))
    except SplitError:
        return grid[0], []
    labels = np.arange(num_classes)
    scores = []
    for settings in grid:
        fold_scores = []
        for train, test in splits:
            model = NgramModel.fit([texts[i] for i in train], y[train], num_classes, settings, class_weight,
                                   None if sample_weight is None else sample_weight[train])
            predicted = model.log_proba([texts[i] for i in test]).argmax(axis=1)
            fold_scores.append(f1_score(y[test], predicted, labels=labels, average="macro", zero_division=0))
        scores.append({**settings.to_dict(), "cv_macro_f1": float(np.mean(fold_scores))})
    best = int(np.argmax([score["cv_macro_f1"] for score in scores]))
    return grid[best], scores


def check_ngram_weight(value) -> float | None:
    """None (choose ``w`` on the validation split) or a number in [0, 1]."""
    return None if value is None else check_number("ngram_weight", value, low=0.0, high=1.0)
