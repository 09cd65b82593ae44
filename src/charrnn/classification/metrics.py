"""Scores of a classification, their mean ± std over folds, and the confusion matrix as text or PNG."""

from __future__ import annotations

import io
import os

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, precision_recall_fscore_support

from charrnn.files import atomic_write

#: The scores of a whole fold, in the order reports list them.
OVERALL = ("macro_f1", "balanced_accuracy", "accuracy")
#: The scores of each class.
PER_CLASS = ("precision", "recall", "f1")


def classification_scores(y_true, y_pred, num_classes: int) -> dict:
    """Per-class precision, recall, F1 and support; macro-F1, balanced accuracy and accuracy.

    ``y_true`` and ``y_pred`` hold class ids in ``[0, num_classes)``. A class never predicted
    has precision 0 (scikit-learn's ``zero_division=0``), not an error.
    """
    labels = np.arange(num_classes)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    present = support > 0
    return {
        "macro_f1": float(f1.mean()),
        # Balanced accuracy is the mean recall over the classes present in y_true.
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)) if present.all()
        else float(recall[present].mean()),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": support.tolist(),
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def summarize_folds(fold_scores: list[dict]) -> dict:
    """Mean and standard deviation (population, ``ddof=0``, as scikit-learn reports) over folds.

    Returns ``{"macro_f1": {"mean": m, "std": s}, ..., "precision": {"mean": [...], "std": [...]}, ...}``,
    plus ``"confusion"``: the fold matrices summed (each example is tested once in K-fold).
    """
    summary = {}
    for name in OVERALL + PER_CLASS:
        values = np.array([scores[name] for scores in fold_scores], dtype=float)  # (K,) or (K, C)
        mean, std = values.mean(axis=0), values.std(axis=0)
        summary[name] = {"mean": mean.tolist(), "std": std.tolist()}
    summary["confusion"] = np.sum([scores["confusion"] for scores in fold_scores], axis=0).tolist()
    summary["support"] = np.sum([scores["support"] for scores in fold_scores], axis=0).tolist()
    return summary


def format_summary(summary: dict, classes, with_std: bool = True) -> str:
    """The summary as a table: one row per class, then the overall scores, as mean ± std
    (or the mean alone when ``with_std`` is false, e.g. for a single split)."""
    names = [str(label) for label in classes]
    width = max(len("balanced accuracy"), *(len(name) for name in names))

    def cell(name, k=None):
        mean, std = summary[name]["mean"], summary[name]["std"]
        if k is not None:
            mean, std = mean[k], std[k]
        return f"{mean:.3f} ± {std:.3f}" if with_std else f"{mean:.3f}"

    lines = [f"{'class':<{width}}  {'precision':>15}  {'recall':>15}  {'f1':>15}  {'support':>7}"]
    for k, name in enumerate(names):
        lines.append(f"{name:<{width}}  {cell('precision', k):>15}  {cell('recall', k):>15}  "
                     f"{cell('f1', k):>15}  {summary['support'][k]:>7}")
    lines.append("")
    for name in OVERALL:
        lines.append(f"{name.replace('_', ' '):<{width}}  {cell(name):>15}")
    return "\n".join(lines)


def format_confusion(matrix, classes) -> str:
    """The confusion matrix as text: rows are true classes, columns predicted ones."""
    matrix = np.asarray(matrix)
    names = [str(label) for label in classes]
    corner = "true \\ predicted"
    first = max(len(corner), *(len(name) for name in names))
    width = max(6, *(len(name) for name in names), len(str(int(matrix.max(initial=0)))))
    header = f"{corner:<{first}}  " + "  ".join(f"{name:>{width}}" for name in names)
    rows = [f"{name:<{first}}  " + "  ".join(f"{int(count):>{width}}" for count in row)
            for name, row in zip(names, matrix)]
    return "\n".join([header, *rows])


def save_confusion_png(matrix, classes, path: str | os.PathLike, title: str = "Confusion matrix") -> None:
    """Draw the confusion matrix as a heatmap (row-normalised colour, raw counts written in)."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed; must precede pyplot's import
    from matplotlib import pyplot as plt

    matrix = np.asarray(matrix)
    names = [str(label) for label in classes]
    totals = matrix.sum(axis=1, keepdims=True)
    # Colour by the share of each true class, so a small class's row is as readable as a big one's.
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    size = 2.5 + 0.6 * len(names)
    figure, axes = plt.subplots(figsize=(size + 1.5, size))
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, label="share of the true class")
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(column, row, str(int(count)), ha="center", va="center",
                  color="white" if shares[row, column] > 0.5 else "black")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    atomic_write(path, buffer.getvalue())
