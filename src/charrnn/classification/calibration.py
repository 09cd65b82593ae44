"""Temperature scaling (Guo et al. 2017, "On calibration of modern neural networks"): one number
per model that makes its probabilities mean what they say on texts it was not trained on.

A blend ``(1 - w)·log p_rnn + w·log p_ngram`` weighs evidence only when both parts are on one
scale; trained to their ends, the two are not (the network's log-probabilities measured about
twice too confident, the regularised n-gram model's up to three times too timid), so the weight
``w`` would be spent correcting scales instead of sharing the evidence.
"""

from __future__ import annotations

import numpy as np

from charrnn.classification.predict import log_softmax

#: The temperatures searched: a hundredth to a hundred (beyond, the fit says nothing useful).
TEMPERATURE_RANGE = (1e-2, 1e2)


def fit_temperature(log_proba: np.ndarray, y: np.ndarray) -> float:
    """The temperature ``T`` that minimises the cross-entropy of ``log_softmax(log_proba / T)``
    ``(N, C)`` against the true classes ``y`` ``(N,)``: above 1 when the scores are too
    confident, below 1 when they are too timid. The cross-entropy is convex in ``1 / T``, so it
    has one minimum, which a bounded search over ``log T`` finds; with no texts, 1."""
    if not len(y):
        return 1.0
    from scipy.optimize import minimize_scalar  # half a second to load: here, not at every command's start

    rows = np.arange(len(y))

    def cross_entropy(log_temperature: float) -> float:
        return float(-log_softmax(log_proba / np.exp(log_temperature))[rows, y].mean())

    low, high = np.log(TEMPERATURE_RANGE)
    found = minimize_scalar(cross_entropy, bounds=(low, high), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(found.x))
