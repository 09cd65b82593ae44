"""Property-based tests (hypothesis): ``sequence_loss`` invariants and split stratification.

Vocabulary round trips and windows have theirs in ``test_vocabulary.py`` and
``test_windows_dense_optim.py``.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn.classification.splits import StratifiedDuplicateKFold, StratifiedDuplicateShuffleSplit
from charrnn.losses import sequence_loss
from charrnn.splits import Sklearn019StratifiedKFold

FAST = settings(max_examples=60, deadline=None)


@st.composite
def loss_inputs(draw):
    """Logits (B, T, C), targets (B, T) and positive weights (B, T) from a drawn seed."""
    batch, steps, classes = draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(2, 7))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2 ** 31 - 1)))
    logits = torch.randn(batch, steps, classes, generator=generator, dtype=torch.float64) * 3
    targets = torch.randint(classes, (batch, steps), generator=generator)
    weights = torch.rand(batch, steps, generator=generator, dtype=torch.float64) + 0.1
    return logits, targets, weights


@FAST
@given(loss_inputs(), st.floats(0.01, 100.0))
def test_sequence_loss_ignores_the_scale_of_the_weights(inputs, scale):
    logits, targets, weights = inputs
    for timesteps, batch in ((True, True), (True, False), (False, True)):
        plain = sequence_loss(logits, targets, weights, timesteps, batch)
        scaled = sequence_loss(logits, targets, weights * scale, timesteps, batch)
        torch.testing.assert_close(plain, scaled, rtol=1e-9, atol=1e-9)


@FAST
@given(loss_inputs())
def test_zero_weights_give_zero_loss_and_drop_their_positions(inputs):
    logits, targets, weights = inputs
    assert float(sequence_loss(logits, targets, torch.zeros_like(weights))) == 0.0
    # Masking a position is the same as leaving it out (here: the last time step).
    if logits.shape[1] > 1:
        masked = weights.clone()
        masked[:, -1] = 0
        torch.testing.assert_close(sequence_loss(logits, targets, masked),
                                   sequence_loss(logits[:, :-1], targets[:, :-1], weights[:, :-1]))


@FAST
@given(loss_inputs())
def test_the_averages_agree_with_each_other_and_with_cross_entropy(inputs):
    logits, targets, _ = inputs
    batch, steps, classes = logits.shape
    every = sequence_loss(logits, targets, average_across_timesteps=False, average_across_batch=False)  # (B, T)
    assert every.shape == (batch, steps) and bool((every >= 0).all())
    per_example = sequence_loss(logits, targets, average_across_batch=False)  # (B,)
    per_step = sequence_loss(logits, targets, average_across_timesteps=False)  # (T,)
    whole = sequence_loss(logits, targets)
    reference = torch.nn.functional.cross_entropy(logits.reshape(-1, classes), targets.reshape(-1))
    # With unit weights, the mean of the per-example (or per-step) means is the overall mean.
    for value in (per_example.mean(), per_step.mean(), every.mean(), reference):
        torch.testing.assert_close(whole, value, rtol=1e-9, atol=1e-9)


@FAST
@given(loss_inputs())
def test_a_perfectly_confident_right_prediction_costs_nothing(inputs):
    logits, targets, weights = inputs
    confident = torch.full_like(logits, -1e4).scatter(2, targets.unsqueeze(-1), 1e4)
    assert float(sequence_loss(confident, targets, weights)) < 1e-9


# -- split stratification -----------------------------------------------------------------------------
@st.composite
def labelled(draw, minimum_per_class: int):
    """Labels with every class at least ``minimum_per_class`` times, in a drawn order."""
    counts = draw(st.lists(st.integers(minimum_per_class, 12), min_size=2, max_size=4))
    y = np.repeat(np.arange(len(counts)), counts)
    return y[np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1))).permutation(len(y))]


def _check_partition(folds, size):
    tests = [test for _, test in folds]
    assert sorted(np.concatenate(tests).tolist()) == list(range(size))  # each sample tested once
    for train, test in folds:
        assert not set(train.tolist()) & set(test.tolist())
        assert len(train) + len(test) == size


@FAST
@given(labelled(minimum_per_class=3), st.integers(2, 3), st.booleans(), st.integers(0, 1000))
def test_sklearn019_folds_are_stratified(y, n_splits, shuffle, seed):
    folds = list(Sklearn019StratifiedKFold(n_splits, shuffle=shuffle, random_state=seed if shuffle else None)
                 .split(np.zeros(len(y)), y))
    assert len(folds) == n_splits
    _check_partition(folds, len(y))
    for label in np.unique(y):
        # Each class is dealt out as evenly as K folds allow: fold sizes differ by at most one.
        per_fold = [int((y[test] == label).sum()) for _, test in folds]
        assert max(per_fold) - min(per_fold) <= 1, (label, per_fold)


@FAST
@given(labelled(minimum_per_class=4), st.integers(2, 3), st.integers(0, 1000))
def test_duplicate_kfold_keeps_copies_together_and_every_class_in_every_fold(y, n_splits, seed):
    texts = [f"text {index}" for index in range(len(y))]
    texts[-1] = texts[0] if y[-1] == y[0] else texts[-1]  # one duplicated text
    folds = list(StratifiedDuplicateKFold(n_splits, shuffle=True, random_state=seed).split(texts, y))
    _check_partition(folds, len(y))
    for train, test in folds:
        assert not {texts[i] for i in train} & {texts[i] for i in test}
        assert set(y[test].tolist()) == set(y.tolist())


@FAST
@given(labelled(minimum_per_class=4), st.floats(0.2, 0.5), st.integers(0, 1000))
def test_duplicate_shuffle_split_is_stratified(y, test_size, seed):
    texts = [f"text {index}" for index in range(len(y))]
    train, test = next(StratifiedDuplicateShuffleSplit(test_size=test_size, random_state=seed).split(texts, y))
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(y)))
    assert set(y[test].tolist()) == set(y.tolist()) == set(y[train].tolist())
    for label in np.unique(y):
        # Each class's test share is its proportion of the test size, to within rounding.
        expected = (y == label).sum() * len(test) / len(y)
        assert abs((y[test] == label).sum() - expected) <= 1.0 + 1e-9, label
