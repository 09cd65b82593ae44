"""Character-level sequence classification with stratified evaluation for imbalanced classes.

The pieces, one per module:

- :mod:`~charrnn.classification.data`: labelled texts from a folder of ``<label>.txt`` files
  or a CSV/TSV table;
- :mod:`~charrnn.classification.model`: embedding → cell stack over each text's length →
  final state → class logits;
- :mod:`~charrnn.classification.train`: the training loop (class weights, balanced sampler);
- :mod:`~charrnn.classification.predict`: a trained classifier's probabilities and top-k labels;
- :mod:`~charrnn.classification.checkpoint`: save and load, no pickle;
- :mod:`~charrnn.classification.splits`: stratified splitters that keep duplicates together;
- :mod:`~charrnn.classification.metrics`: per-class and macro scores, confusion matrices;
- :mod:`~charrnn.classification.evaluate` and :mod:`~charrnn.classification.experiment`:
  cross-validation or hold-out, then a saved final model;
- :mod:`~charrnn.classification.estimator`: the same model as a scikit-learn estimator.
"""

from charrnn.classification.checkpoint import load_classifier, save_classifier
from charrnn.classification.data import LabeledTexts, load_dataset, load_folder, load_table
from charrnn.classification.estimator import CharRNNClassifier
from charrnn.classification.evaluate import EvaluationReport, evaluate_splits
from charrnn.classification.experiment import train_and_evaluate
from charrnn.classification.model import CharClassifier, ClassifierConfig
from charrnn.classification.predict import TextClassifier
from charrnn.classification.splits import (
    DuplicateReport,
    SplitError,
    StratifiedDuplicateKFold,
    StratifiedDuplicateShuffleSplit,
    find_duplicates,
)
from charrnn.classification.train import TrainingOptions, train_classifier

__all__ = [
    "CharClassifier", "CharRNNClassifier", "ClassifierConfig", "DuplicateReport", "EvaluationReport",
    "LabeledTexts", "SplitError", "StratifiedDuplicateKFold", "StratifiedDuplicateShuffleSplit",
    "TextClassifier", "TrainingOptions", "evaluate_splits", "find_duplicates", "load_classifier",
    "load_dataset", "load_folder", "load_table", "save_classifier", "train_and_evaluate",
    "train_classifier",
]
