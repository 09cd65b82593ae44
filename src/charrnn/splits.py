"""Stratified splitters that work like scikit-learn's: ``split(X, y)`` yields index arrays.

scikit-learn's own ``StratifiedKFold``, ``StratifiedShuffleSplit`` and ``train_test_split``
are used as they are. What lives here is what scikit-learn no longer offers.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.model_selection import BaseCrossValidator, KFold
from sklearn.utils.validation import check_array, column_or_1d


def check_shuffle(shuffle, random_state) -> bool:
    """``shuffle`` as a bool, checked as scikit-learn's K-folds check it.

    Not a bool (``1``, ``"yes"``) is a ``TypeError``; a ``random_state`` with ``shuffle=False``
    would be silently unused, so it is a ``ValueError``.
    """
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be True or False; got {shuffle!r}")
    if not shuffle and random_state is not None:
        raise ValueError("Setting a random_state has no effect since shuffle is False. You should leave "
                         "random_state to its default (None), or set shuffle=True.")
    return bool(shuffle)


class Sklearn019StratifiedKFold(BaseCrossValidator):
    """Stratified K-fold with the fold assignment of scikit-learn 0.19.

    The lecture's printed folds (test ``[2 5 8]``, ``[1 4 6]``, ``[0 3 7]``) came from
    scikit-learn 0.19; since 0.20 ``StratifiedKFold(shuffle=True)`` assigns folds otherwise
    (``[2 5 7]``, ``[1 4 6]``, ``[0 3 8]`` on the same data). This class reproduces 0.19:
    for each class in sorted order, a ``KFold(n_splits, shuffle, random_state)`` (the same
    integer seed for every class) runs over ``max(count, n_splits)`` positions, and fold ``f``
    takes that K-fold's ``f``-th test positions below ``count``, as positions among the
    class's samples in index order.

    As 0.19 did, it refuses ``n_splits`` above every class's size (a fold would be left with
    no test samples) and warns when only the least populated class is smaller than ``n_splits``.

    Parameters
    ----------
    n_splits : int, at least 2
    shuffle : bool
    random_state : int or None
        An integer gives the lecture's reproducible folds; only with ``shuffle=True``.

    Examples
    --------
    >>> X = np.array([-5, -3, -1, 1, 3, 5, 7, 9, 11])
    >>> y = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1])
    >>> splitter = Sklearn019StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    >>> [test.tolist() for _, test in splitter.split(X, y)]
    [[2, 5, 8], [1, 4, 6], [0, 3, 7]]
    """

    def __init__(self, n_splits: int = 3, shuffle: bool = False, random_state: int | None = None):
        if not isinstance(n_splits, (int, np.integer)) or isinstance(n_splits, bool):
            raise ValueError(f"n_splits must be an integer, got {n_splits!r}")
        if n_splits < 2:
            raise ValueError(f"n_splits={n_splits} cannot be less than 2")
        self.shuffle = check_shuffle(shuffle, random_state)
        self.n_splits = int(n_splits)
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """The number of folds."""
        return self.n_splits

    def _test_folds(self, y: np.ndarray) -> np.ndarray:
        classes, counts = np.unique(y, return_counts=True)
        if self.n_splits > len(y):
            raise ValueError(f"cannot have n_splits={self.n_splits} greater than the number of samples {len(y)}")
        if np.all(self.n_splits > counts):
            raise ValueError(f"n_splits={self.n_splits} cannot be greater than the number of members in each class")
        if self.n_splits > counts.min():
            warnings.warn(f"The least populated class in y has only {counts.min()} members, which is too few. "
                          f"The minimum number of members in any class cannot be less than "
                          f"n_splits={self.n_splits}.", UserWarning, stacklevel=3)
        test_folds = np.zeros(len(y), dtype=int)
        for label, count in zip(classes, counts):
            members = np.flatnonzero(y == label)  # this class's samples, in index order
            kfold = KFold(self.n_splits, shuffle=self.shuffle, random_state=self.random_state)
            positions = np.zeros(max(count, self.n_splits))
            for fold, (_, test_positions) in enumerate(kfold.split(positions)):
                test_positions = test_positions[test_positions < count]
                test_folds[members[test_positions]] = fold
        return test_folds

    def split(self, X, y, groups=None):
        """Yield ``(train_index, test_index)`` for each fold, both sorted."""
        y = column_or_1d(check_array(y, ensure_2d=False, dtype=None))
        if X is not None and len(X) != len(y):
            raise ValueError(f"X has {len(X)} samples but y has {len(y)}")
        test_folds = self._test_folds(y)
        for fold in range(self.n_splits):
            yield np.flatnonzero(test_folds != fold), np.flatnonzero(test_folds == fold)
