"""Stratified splitters with duplicate grouping, and the duplicate report."""

import numpy as np
import pytest
from sklearn.model_selection import cross_val_score
from sklearn.dummy import DummyClassifier

from charrnn.classification.splits import (
    SplitError,
    StratifiedDuplicateKFold,
    StratifiedDuplicateShuffleSplit,
    duplicate_groups,
    find_duplicates,
)
from charrnn.errors import CharRNNError


def imbalanced(rng, majority=500, minority=10):
    """Distinct texts, 50:1, plus some duplicates: same-label copies and cross-label conflicts."""
    texts = [f"m{i:04d}" for i in range(majority)] + [f"r{i:03d}" for i in range(minority)]
    labels = ["common"] * majority + ["rare"] * minority
    texts += ["m0001", "m0002", "m0002", "r001", "m0007"]          # copies, one of them conflicting
    labels += ["common", "common", "common", "rare", "rare"]
    order = rng.permutation(len(texts))
    return [texts[i] for i in order], [labels[i] for i in order]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kfold_keeps_every_class_in_every_fold_at_50_to_1(seed):
    texts, labels = imbalanced(np.random.default_rng(seed))
    y = np.array(labels)
    splitter = StratifiedDuplicateKFold(n_splits=5, shuffle=True, random_state=seed)
    tested = []
    for train, test in splitter.split(texts, labels):
        assert set(y[test]) == {"common", "rare"}
        assert set(y[train]) == {"common", "rare"}
        # the rare class is spread evenly: 11 rare examples (10 + a copy), 2 or 3 per fold
        assert 1 <= (y[test] == "rare").sum() <= 4
        assert not {texts[i] for i in train} & {texts[i] for i in test}
        tested.extend(test.tolist())
    assert sorted(tested) == list(range(len(texts)))  # each example tested exactly once


def test_duplicates_share_a_fold_even_under_different_labels():
    texts, labels = imbalanced(np.random.default_rng(3))
    for train, test in StratifiedDuplicateKFold(5, random_state=0).split(texts, labels):
        test_side = set(test.tolist())
        for text in ("m0001", "m0002", "m0007", "r001"):
            sides = {i in test_side for i, other in enumerate(texts) if other == text}
            assert len(sides) == 1, f"copies of {text} on both sides"


def test_holdout_is_stratified_and_groups_duplicates():
    texts, labels = imbalanced(np.random.default_rng(4))
    y = np.array(labels)
    splits = list(StratifiedDuplicateShuffleSplit(n_splits=3, test_size=0.2, random_state=0).split(texts, labels))
    assert len(splits) == 3
    for train, test in splits:
        assert set(y[test]) == {"common", "rare"}
        assert not {texts[i] for i in train} & {texts[i] for i in test}
        assert len(set(train.tolist()) | set(test.tolist())) == len(texts)
        assert 0.15 < len(test) / len(texts) < 0.25
        assert 1 <= (y[test] == "rare").sum() <= 4
    assert not np.array_equal(splits[0][1], splits[1][1])


def test_same_seed_same_folds():
    texts, labels = imbalanced(np.random.default_rng(5))
    first = [test.tolist() for _, test in StratifiedDuplicateKFold(4, random_state=7).split(texts, labels)]
    again = [test.tolist() for _, test in StratifiedDuplicateKFold(4, random_state=7).split(texts, labels)]
    assert first == again


def test_find_duplicates_counts():
    report = find_duplicates(["a", "b", "a", "c", "b", "b", "d"], [0, 0, 0, 1, 1, 0, 1])
    assert (report.examples, report.distinct_texts, report.duplicated_texts) == (7, 4, 2)
    assert report.extra_copies == 3
    assert report.conflicting_texts == 1  # "b" is labelled 0 and 1
    assert "2 texts occur more than once" in report.describe()
    assert find_duplicates(["x", "y"], [0, 1]).describe() == "2 examples, no duplicate texts"
    assert duplicate_groups(["q", "r", "q"]).tolist() == [0, 1, 0]


def test_class_smaller_than_folds_is_named():
    texts = [f"t{i}" for i in range(20)] + ["u1", "u2", "u3"]
    labels = ["big"] * 20 + ["small"] * 3
    with pytest.raises(SplitError, match=r"class 'small' has only 3 examples, fewer than the 5"):
        list(StratifiedDuplicateKFold(5).split(texts, labels))
    # copies count once: 4 lines but 2 distinct texts
    with pytest.raises(CharRNNError, match=r"'small' has only 2 distinct texts \(4 examples\)"):
        list(StratifiedDuplicateKFold(3).split(texts[:20] + ["u1", "u2", "u1", "u2"], labels[:20] + ["small"] * 4))
    with pytest.raises(SplitError, match="n_splits=1 cannot be less than 2"):
        StratifiedDuplicateKFold(1)
    with pytest.raises(SplitError, match="test_size must be a fraction"):
        StratifiedDuplicateShuffleSplit(test_size=1.5)
    with pytest.raises(SplitError, match="'small' has only 1 example, fewer than the 2 that a stratified hold-out"):
        list(StratifiedDuplicateShuffleSplit().split(["a", "b", "c"], ["big", "big", "small"]))


def test_plugs_into_scikit_learn_cross_validation():
    texts, labels = imbalanced(np.random.default_rng(6))
    splitter = StratifiedDuplicateKFold(5, random_state=0)
    assert splitter.get_n_splits() == 5
    scores = cross_val_score(DummyClassifier(strategy="most_frequent"), np.zeros((len(texts), 1)),
                             labels, cv=list(splitter.split(texts, labels)), scoring="balanced_accuracy")
    assert np.allclose(scores, 0.5)
