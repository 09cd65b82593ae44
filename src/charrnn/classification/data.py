"""Labelled texts for classification: a folder of ``<label>.txt`` files, or a CSV/TSV table.

Every loader returns a :class:`LabeledTexts`: the examples in file order with their labels,
and the sorted class names whose positions are the class ids the model predicts.
Surrounding whitespace is stripped from every example and blank examples are skipped.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charrnn.errors import DataError
from charrnn.files import read_bytes


@dataclass
class LabeledTexts:
    """Texts with one label each.

    Attributes
    ----------
    texts : list of str
        The examples, in the order they were read.
    labels : list of str
        The label of each example.
    classes : list of str
        The distinct labels, sorted; ``classes[k]`` is class id ``k``.
    """

    texts: list[str]
    labels: list[str]
    classes: list[str]

    def __post_init__(self):
        if len(self.texts) != len(self.labels):
            raise DataError(f"got {len(self.texts)} texts but {len(self.labels)} labels")
        unknown = sorted(set(self.labels) - set(self.classes))
        if unknown:
            raise DataError(f"labels not among the classes: {', '.join(map(repr, unknown))}")

    @classmethod
    def from_lists(cls, texts, labels) -> "LabeledTexts":
        """Texts and labels given in memory; the classes are the sorted distinct labels."""
        texts, labels = [str(text) for text in texts], [str(label) for label in labels]
        return cls(texts, labels, sorted(set(labels)))

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def y(self) -> np.ndarray:
        """The class id of each example, an int64 array ``(N,)``."""
        index = {label: k for k, label in enumerate(self.classes)}
        return np.array([index[label] for label in self.labels], dtype=np.int64)

    def class_counts(self) -> dict[str, int]:
        """How many examples each class has, in class order."""
        counts = np.bincount(self.y, minlength=len(self.classes))
        return {label: int(count) for label, count in zip(self.classes, counts)}

    def subset(self, indices) -> "LabeledTexts":
        """The examples at ``indices``, keeping every class (even one left empty)."""
        return LabeledTexts([self.texts[i] for i in indices], [self.labels[i] for i in indices],
                            list(self.classes))


def _read_text(path: Path) -> str:
    try:
        # utf-8-sig drops the byte-order mark that spreadsheet programs put first.
        return read_bytes(path, "a text file").decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text (byte {error.start}: {error.reason})") from None


def _check_classes(data: LabeledTexts, source: Path) -> LabeledTexts:
    if len(data.classes) < 2:
        found = data.classes[0] if data.classes else "none"
        raise DataError(f"{source}: classification needs at least 2 classes, found {found!r}"
                           if data.classes else f"{source}: no examples found")
    return data


def load_folder(folder: str | os.PathLike) -> LabeledTexts:
    """Read a folder of ``<label>.txt`` files, one UTF-8 example per line.

    The file name without ``.txt`` is the label of its lines. Other files, and hidden ones, are ignored.
    """
    folder = Path(folder)
    # Hidden files (macOS's "._female.txt" companions and the like) are not classes.
    files = sorted(path for path in folder.glob("*.txt") if path.is_file() and not path.name.startswith("."))
    if not files:
        raise DataError(f"{folder}: no <label>.txt files in this folder "
                           "(expected one file per class, one example per line)")
    texts, labels = [], []
    for path in files:
        lines = [line.strip() for line in _read_text(path).splitlines()]
        examples = [line for line in lines if line]
        if not examples:
            raise DataError(f"{path}: no examples (the file is empty or blank)")
        texts.extend(examples)
        labels.extend([path.stem] * len(examples))
    return _check_classes(LabeledTexts(texts, labels, [path.stem for path in files]), folder)


class _NumberedLines:
    """A text's lines for the csv module, noting the line each row starts on (blank lines skipped)."""

    def __init__(self, text: str):
        self.lines = io.StringIO(text, newline="")
        self.count, self.row_start = 0, None

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        self.count += 1
        if self.row_start is None and line.strip("\r\n"):
            self.row_start = self.count
        return line


def load_table(path: str | os.PathLike, text_column: str = "text", label_column: str = "label",
               delimiter: str | None = None) -> LabeledTexts:
    """Read a CSV or TSV file with a header row naming ``text_column`` and ``label_column``.

    The delimiter is a tab for ``.tsv``/``.tab`` files and a comma otherwise, unless given. A
    tab-separated file is not quoted (a text may begin with ``"``), as TSV is written; a
    comma-separated one follows CSV's quoting, where a quoted field may span lines. Rows whose
    text is blank are skipped; a row without a label is an error naming the line where the row
    began.
    """
    path = Path(path)
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    # newline="" lets the csv module see quoted fields that span lines.
    lines = _NumberedLines(_read_text(path))
    reader = csv.DictReader(lines, delimiter=delimiter, quoting=quoting)
    columns = reader.fieldnames or []
    missing = [name for name in (text_column, label_column) if name not in columns]
    if missing:
        raise DataError(f"{path}: no column named {' or '.join(map(repr, missing))}; "
                           f"the header has {', '.join(map(repr, columns)) or 'no columns'} "
                           "(choose with --text-column / --label-column)")
    texts, labels = [], []
    try:
        lines.row_start = None
        for row in reader:
            begun, lines.row_start = lines.row_start, None
            where = f"line {begun}" + (f" (a quoted field runs from there to line {reader.line_num}: is a quote "
                                       f"left open?)" if reader.line_num > begun else "")
            text = (row[text_column] or "").strip()
            label = (row[label_column] or "").strip()
            if not text:
                continue
            if not label:
                raise DataError(f"{path}: {where}: empty {label_column!r} for text {text[:40]!r}")
            texts.append(text)
            labels.append(label)
    except csv.Error as error:
        raise DataError(f"{path}: line {reader.line_num}: {error}") from None
    return _check_classes(LabeledTexts.from_lists(texts, labels), path)


def load_dataset(path: str | os.PathLike, text_column: str = "text", label_column: str = "label",
                 delimiter: str | None = None) -> LabeledTexts:
    """A folder of ``<label>.txt`` files or a CSV/TSV table, whichever ``path`` is."""
    path = Path(path)
    if path.is_dir():
        return load_folder(path)
    if path.is_file():
        return load_table(path, text_column, label_column, delimiter)
    raise DataError(f"{path}: no such file or folder")
