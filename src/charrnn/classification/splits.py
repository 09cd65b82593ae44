"""Stratified splitters that keep exact duplicate texts on one side of every split.

They work like scikit-learn's splitters (``split(X, y, groups=None)`` yields ``(train, test)``
index arrays, ``get_n_splits``), so they plug into ``cross_val_score`` and kin. ``X`` holds the
texts; ``groups`` defaults to "identical texts", so a text that occurs twice (even under two
labels) is never both trained on and tested on. Both request ``groups`` in scikit-learn's
metadata routing (``cross_validate(..., params={"groups": g})`` with
``sklearn.set_config(enable_metadata_routing=True)``), as its group splitters do.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import (
    BaseCrossValidator,
    StratifiedGroupKFold,
    StratifiedShuffleSplit,
)

from charrnn.errors import CharRNNError
from charrnn.splits import check_shuffle


class SplitError(CharRNNError, ValueError):
    """The data cannot be split as asked (e.g. a class smaller than the number of folds)."""


def duplicate_groups(texts) -> np.ndarray:
    """A group id per text: identical texts share one id (ids in order of first appearance)."""
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(str(text), len(ids)) for text in texts], dtype=np.int64)


@dataclass
class DuplicateReport:
    """How many exact duplicates a set of labelled texts holds.

    Attributes
    ----------
    examples : int
        Number of examples.
    distinct_texts : int
        Number of distinct texts.
    duplicated_texts : int
        Distinct texts that occur more than once.
    extra_copies : int
        Examples beyond the first copy of each text (``examples - distinct_texts``).
    conflicting_texts : int
        Distinct texts that occur under more than one label.
    """

    examples: int
    distinct_texts: int
    duplicated_texts: int
    extra_copies: int
    conflicting_texts: int

    def describe(self) -> str:
        """One sentence for people."""
        if not self.duplicated_texts:
            return f"{self.examples} examples, no duplicate texts"
        texts = "1 text occurs" if self.duplicated_texts == 1 else f"{self.duplicated_texts} texts occur"
        return (f"{self.examples} examples, {self.distinct_texts} distinct texts: "
                f"{texts} more than once ({self.extra_copies} extra copies), "
                f"{self.conflicting_texts} of them under different labels; "
                "copies of a text are always kept on the same side of a split")


def find_duplicates(texts, labels) -> DuplicateReport:
    """Count the exact duplicates among ``texts`` and those whose copies disagree on the label."""
    groups = duplicate_groups(texts)
    sizes = np.bincount(groups)
    labels_of_group: dict[int, set] = {}
    for group, label in zip(groups.tolist(), labels):
        labels_of_group.setdefault(group, set()).add(label)
    return DuplicateReport(
        examples=len(groups), distinct_texts=len(sizes), duplicated_texts=int((sizes > 1).sum()),
        extra_copies=int(len(groups) - len(sizes)),
        conflicting_texts=sum(len(found) > 1 for found in labels_of_group.values()))


def _check_groups_per_class(y, groups, needed: int, what: str) -> None:
    """Every class needs ``needed`` distinct texts (groups) for ``what``; name the first that lacks them."""
    labels = np.asarray(y).tolist()
    members = Counter(labels)
    groups_of_class: dict = {}
    for label, group in zip(labels, groups.tolist()):
        groups_of_class.setdefault(label, set()).add(group)
    for label in sorted(members, key=str):
        distinct = len(groups_of_class[label])
        if distinct < needed:
            examples = f"{members[label]} example{'s' if members[label] != 1 else ''}"
            detail = f"{distinct} distinct texts ({examples})" if distinct != members[label] else examples
            raise SplitError(f"class {label!r} has only {detail}, fewer than the {needed} that {what} needs")


def _prepare(X, y, groups):
    if y is None:
        raise SplitError("stratified splitting needs the labels y")
    y = np.asarray(y)
    if len(X) != len(y):
        raise SplitError(f"X has {len(X)} texts but y has {len(y)} labels")
    groups = duplicate_groups(X) if groups is None else duplicate_groups(groups)
    if len(groups) != len(y):
        raise SplitError(f"groups has {len(groups)} entries but y has {len(y)} labels")
    return y, groups


class StratifiedDuplicateKFold(BaseCrossValidator):

    """Stratified K-fold in which the copies of a text always share a fold.

    scikit-learn's :class:`~sklearn.model_selection.StratifiedGroupKFold` with ``groups``
    defaulting to identical texts of ``X``. Each fold keeps the class proportions as closely
    as the grouping allows; every class with at least ``n_splits`` distinct texts appears in
    every test fold.

    Parameters
    ----------
    n_splits : int, at least 2
    shuffle : bool
        Shuffle the groups before assigning them (ties otherwise go by order).
    random_state : int, RandomState or None
        Seed for the shuffle; only with ``shuffle=True`` (else a ``ValueError``, as scikit-learn's).

    Examples
    --------
    >>> X = ["ann", "bob", "cy", "dee", "eve", "fay", "bob", "gus", "hal"]
    >>> y = [0, 1, 0, 1, 0, 0, 1, 0, 1]
    >>> splitter = StratifiedDuplicateKFold(n_splits=2, shuffle=True, random_state=0)
    >>> for train, test in splitter.split(X, y):
    ...     assert not {X[i] for i in train} & {X[i] for i in test}
    ...     assert set(np.asarray(y)[test]) == {0, 1}
    """

    # scikit-learn's metadata routing hands ``groups`` to ``split`` (as GroupsConsumerMixin asks).
    __metadata_request__split = {"groups": True}

    def __init__(self, n_splits: int = 5, shuffle: bool = True, random_state: int | None = None):
        if not isinstance(n_splits, (int, np.integer)) or isinstance(n_splits, bool):
            raise SplitError(f"n_splits must be an integer, got {n_splits!r}")
        if n_splits < 2:
            raise SplitError(f"n_splits={n_splits} cannot be less than 2")
        try:
            self.shuffle = check_shuffle(shuffle, random_state)
        except ValueError as error:
            raise SplitError(str(error)) from None
        self.n_splits = int(n_splits)
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """The number of folds."""
        return self.n_splits

    def split(self, X, y, groups=None):
        """Yield ``(train, test)`` index arrays, one pair per fold.

        Raises :class:`SplitError` naming a class with fewer than ``n_splits`` distinct texts.
        """
        y, groups = _prepare(X, y, groups)
        _check_groups_per_class(y, groups, self.n_splits, f"{self.n_splits}-fold cross-validation")
        kfold = StratifiedGroupKFold(self.n_splits, shuffle=self.shuffle, random_state=self.random_state)
        yield from kfold.split(np.zeros(len(y)), y, groups)


def _check_size(name: str, value, optional: bool):
    """A hold-out size: a fraction in (0, 1), a count of distinct texts >= 1, or (``optional``) None."""
    if value is None and optional:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        if value < 1:
            raise SplitError(f"{name}={value!r} must be a fraction in (0, 1) or a number of distinct texts >= 1")
        return int(value)
    if isinstance(value, (float, np.floating)) and 0.0 < value < 1.0:
        return float(value)
    raise SplitError(f"{name} must be a fraction between 0 and 1 or a number of distinct texts >= 1, got {value!r}")


class StratifiedDuplicateShuffleSplit(BaseCrossValidator):

    """Stratified random hold-out splits in which the copies of a text share a side.

    The distinct texts (groups) are split by scikit-learn's
    :class:`~sklearn.model_selection.StratifiedShuffleSplit`, stratified by the label(s) each
    text carries; a text under two labels forms its own stratum when there are at least two
    such texts. ``n_splits=1`` is a stratified ``train_test_split`` that respects duplicates.

    Parameters
    ----------
    n_splits : int
        Number of independent splits.
    test_size : float in (0, 1) or int
        The share of distinct texts put in the test side, or their number.
    train_size : float in (0, 1), int or None
        The share (or number) of distinct texts in the train side; None: all the others.
    random_state : int, RandomState or None

    Examples
    --------
    >>> X = ["a", "b", "c", "d", "e", "f", "g", "h", "a", "i"]
    >>> y = [0, 0, 0, 0, 0, 0, 1, 1, 0, 1]
    >>> train, test = next(StratifiedDuplicateShuffleSplit(test_size=0.3, random_state=0).split(X, y))
    >>> sorted(set(np.asarray(y)[test].tolist()))
    [0, 1]
    >>> bool({X[i] for i in train} & {X[i] for i in test})
    False
    """

    # scikit-learn's metadata routing hands ``groups`` to ``split`` (as GroupsConsumerMixin asks).
    __metadata_request__split = {"groups": True}

    def __init__(self, n_splits: int = 1, test_size: float = 0.2, train_size: float | None = None,
                 random_state: int | None = None):
        if not isinstance(n_splits, (int, np.integer)) or isinstance(n_splits, bool) or n_splits < 1:
            raise SplitError(f"n_splits must be a positive integer, got {n_splits!r}")
        self.n_splits = int(n_splits)
        self.test_size = _check_size("test_size", test_size, optional=False)
        self.train_size = _check_size("train_size", train_size, optional=True)
        if isinstance(self.test_size, float) and isinstance(self.train_size, float) \
                and self.test_size + self.train_size > 1:
            raise SplitError(f"test_size + train_size must be at most 1, got {self.test_size} + {self.train_size}")
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """The number of splits."""
        return self.n_splits

    def split(self, X, y, groups=None):
        """Yield ``(train, test)`` index arrays, sorted, ``n_splits`` times."""
        y, groups = _prepare(X, y, groups)
        _check_groups_per_class(y, groups, 2, "a stratified hold-out")
        number_of_groups = int(groups.max()) + 1
        labels_of_group: list[Counter] = [Counter() for _ in range(number_of_groups)]
        for group, label in zip(groups.tolist(), y.tolist()):
            labels_of_group[group][label] += 1
        strata = ["|".join(sorted(map(str, counts))) for counts in labels_of_group]
        frequency = Counter(strata)
        # A mix of labels seen on one text only cannot be stratified: it joins its commonest label.
        strata = [stratum if frequency[stratum] > 1 else str(counts.most_common(1)[0][0])
                  for stratum, counts in zip(strata, labels_of_group)]
        splitter = StratifiedShuffleSplit(self.n_splits, test_size=self.test_size, train_size=self.train_size,
                                          random_state=self.random_state)
        members = [[] for _ in range(number_of_groups)]
        for index, group in enumerate(groups.tolist()):
            members[group].append(index)
        try:
            for train_groups, test_groups in splitter.split(np.zeros(number_of_groups), strata):
                yield (np.sort(np.concatenate([members[g] for g in train_groups])).astype(np.int64),
                       np.sort(np.concatenate([members[g] for g in test_groups])).astype(np.int64))
        except ValueError as error:
            raise SplitError(f"cannot make a stratified hold-out with test size {self.test_size}: "
                             f"{error}") from None
