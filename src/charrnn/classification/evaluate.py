"""Evaluation over splits: train on each train side, score the test side, summarise the folds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from charrnn.classification.data import LabeledTexts
from charrnn.classification.metrics import classification_scores, format_confusion, format_summary, summarize_folds
from charrnn.classification.predict import TextClassifier
from charrnn.classification.splits import DuplicateReport, find_duplicates


@dataclass
class EvaluationReport:
    """Scores of each split and their summary.

    Attributes
    ----------
    method : str
        How the data was split, in words (e.g. ``"stratified 5-fold cross-validation"``).
    classes : list of str
    folds : list of dict
        :func:`~charrnn.classification.metrics.classification_scores` of each split, with
        ``train_size`` and ``test_size`` added.
    summary : dict
        :func:`~charrnn.classification.metrics.summarize_folds` of ``folds``.
    duplicates : DuplicateReport
    final_model_trained_on : str or None
        What the model kept after the evaluation was trained on, when one was kept.
    """

    method: str
    classes: list
    folds: list
    summary: dict
    duplicates: DuplicateReport
    final_model_trained_on: str | None = None

    def format(self) -> str:
        """The report as people read it: duplicates, the score table and the confusion matrix."""
        several = len(self.folds) > 1
        return "\n".join([
            f"evaluation: {self.method}",
            f"duplicates: {self.duplicates.describe()}",
            "",
            f"scores (mean ± std over {len(self.folds)} folds):" if several else "scores (test side):",
            format_summary(self.summary, self.classes, with_std=several),
            "",
            "confusion matrix (all test folds together):" if several else "confusion matrix (test side):",
            format_confusion(self.summary["confusion"], self.classes),
        ] + ([] if self.final_model_trained_on is None else
             ["", f"saved model: trained on {self.final_model_trained_on}"]))

    def to_dict(self) -> dict:
        """Plain values for JSON."""
        return {"method": self.method, "classes": [str(label) for label in self.classes],
                "duplicates": vars(self.duplicates), "summary": self.summary, "folds": self.folds,
                "final_model_trained_on": self.final_model_trained_on}


def evaluate_splits(data: LabeledTexts, splitter, fit: Callable[[LabeledTexts], TextClassifier],
                    method: str, log: Callable[[str], None] | None = None) -> EvaluationReport:
    """Train with ``fit`` on each train side that ``splitter.split(texts, labels)`` yields; score the test side.

    Parameters
    ----------
    data : LabeledTexts
    splitter : object with ``split(X, y)``
        E.g. :class:`~charrnn.classification.splits.StratifiedDuplicateKFold`.
    fit : callable
        Trains a classifier on the train side's :class:`LabeledTexts`.
    method : str
        The splitting described in words, for the report.
    """
    y = data.y
    folds = []
    splits = list(splitter.split(data.texts, data.labels))
    for number, (train, test) in enumerate(splits, start=1):
        if log is not None:
            log(f"split {number}/{len(splits)}: training on {len(train)} texts, testing on {len(test)}")
        classifier = fit(data.subset(train))
        predicted = classifier.predict_proba([data.texts[i] for i in test]).argmax(axis=1)
        scores = classification_scores(y[test], predicted, len(data.classes))
        scores.update(train_size=int(len(train)), test_size=int(len(test)))
        folds.append(scores)
        if log is not None:
            log(f"split {number}/{len(splits)}: macro-F1 {scores['macro_f1']:.3f}, "
                f"balanced accuracy {scores['balanced_accuracy']:.3f}")
    return EvaluationReport(method, list(data.classes), folds, summarize_folds(folds),
                            find_duplicates(data.texts, data.labels))
