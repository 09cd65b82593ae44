"""Temperature scaling of the blend's two parts (charrnn.classification.calibration)."""

import numpy as np
import pytest

from charrnn.classification.calibration import fit_temperature
from charrnn.classification.predict import log_softmax
from charrnn.classification.train import TAU_GRID, EpochSelection


def _labelled_scores(temperature: float, seed: int = 0, count: int = 4000, classes: int = 5):
    """Scores ``(N, C)`` whose classes ``y`` are drawn from ``softmax(scores / temperature)``."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(scale=3.0, size=(count, classes))
    probability = np.exp(log_softmax(scores / temperature))
    y = np.array([rng.choice(classes, p=row) for row in probability])
    return scores, y


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.5])
def test_the_fitted_temperature_is_the_one_the_labels_were_drawn_at(temperature):
    scores, y = _labelled_scores(temperature)
    assert fit_temperature(log_softmax(scores), y) == pytest.approx(temperature, rel=0.1)


def test_no_texts_keep_the_scores_as_they_are():
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0


def test_the_blend_chooses_the_same_whatever_either_part_s_confidence():
    """Each part is calibrated before the blend, so making one part k times more confident
    changes its fitted temperature k-fold and leaves the blend's weight and τ as they were."""
    rnn, y = _labelled_scores(1.5, seed=1, count=1500, classes=3)
    rng = np.random.default_rng(2)
    ngram = rnn + rng.normal(scale=2.0, size=rnn.shape)  # another view of the same classes
    prior = np.bincount(y, minlength=3) / len(y)
    weights = tuple(np.round(np.linspace(0, 1, 11), 1))

    def choose(rnn_scale, ngram_scale):
        selection = EpochSelection(None, None, y, prior, TAU_GRID, log_softmax(ngram * ngram_scale), weights)
        return selection.score(log_softmax(rnn * rnn_scale))

    plain = choose(1.0, 1.0)
    assert 0 < plain.weight < 1  # both parts carry evidence
    for rnn_scale, ngram_scale in [(3.0, 1.0), (1.0, 0.25), (0.5, 4.0)]:
        scaled = choose(rnn_scale, ngram_scale)
        assert (scaled.weight, scaled.tau) == (plain.weight, plain.tau)
        assert scaled.temperatures[0] == pytest.approx(plain.temperatures[0] * rnn_scale, rel=1e-3)
        assert scaled.temperatures[1] == pytest.approx(plain.temperatures[1] * ngram_scale, rel=1e-3)
