"""scikit-learn's own estimator checks run against ``CharRNNClassifier``.

``check_estimator`` feeds 2-D numeric arrays, which a text classifier refuses (its tags say
``string``, not ``two_d_array``, so scikit-learn skips every check for it). To still run the
checks against the real ``fit`` / ``predict`` code, :class:`NumbersAsText` writes each row of
numbers as a text (one character per value, by its rank among 16 bins) and hands that to the
classifier; everything else is ``CharRNNClassifier``'s own. The checks that cannot hold for a
character RNN are listed in :data:`EXPECTED_FAILURES` with the reason.
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import SkipTestWarning
from sklearn.utils.estimator_checks import check_estimator, parametrize_with_checks
from sklearn.utils.validation import validate_data

from charrnn.classification import CharRNNClassifier

SYMBOLS = np.array(list("abcdefghijklmnop"))


class NumbersAsText(CharRNNClassifier):
    """``CharRNNClassifier`` on 2-D numeric ``X``: each row becomes a text of 16 symbols."""

    def _texts(self, X, reset: bool):
        X = validate_data(self, X, reset=reset)
        if reset:
            self.edges_ = np.quantile(X, np.linspace(0, 1, 17)[1:-1]) if X.size else np.zeros(15)
        return ["".join(SYMBOLS[np.searchsorted(self.edges_, row)]) for row in X]

    def fit(self, X, y, sample_weight=None):
        """Fit on the rows written as texts."""
        return super().fit(self._texts(X, reset=True), y, sample_weight=sample_weight)

    def predict_proba(self, X):
        """Probabilities of the rows written as texts."""
        super().predict_proba([])  # NotFittedError before any look at X
        return super().predict_proba(self._texts(X, reset=False))

    def predict_log_proba(self, X):
        """Log-probabilities of the rows written as texts."""
        super().predict_proba([])
        return super().predict_log_proba(self._texts(X, reset=False))

    def decision_function(self, X):
        """Logits of the rows written as texts."""
        super().predict_proba([])
        return super().decision_function(self._texts(X, reset=False))

    def predict(self, X):
        """Labels of the rows written as texts."""
        best = self.predict_proba(X).argmax(axis=1)
        return self.classes_[best]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string, tags.input_tags.two_d_array = False, True
        tags.non_deterministic = False
        return tags


#: The checks a character RNN cannot pass, and why.
EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data":
        "minibatch SGD: a weight of 2 is not the same run as a repeated row (the batches differ)",
    "check_sample_weights_not_an_array": "as above: equivalence of weights and repeated rows",
    "check_classifiers_train":
        "asks for accuracy > 0.83 on blobs after 2 epochs of a 4-unit RNN over binned numbers",
    "check_class_weight_classifiers": "asks for accuracy > 0.87 on blobs from the same tiny, briefly trained model",
}


def _small(**settings):
    return NumbersAsText(hidden_size=4, embedding_size=2, epochs=2, batch_size=16, validation_fraction=0.0, ensemble=1,
                         device="cpu", random_state=0, **settings)


@parametrize_with_checks([_small()], expected_failed_checks=lambda estimator: EXPECTED_FAILURES)
def test_scikit_learn_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        check(estimator)


def test_check_estimator_skips_a_text_classifier_and_says_why():
    with pytest.warns(SkipTestWarning, match="Can't test estimator CharRNNClassifier"):
        check_estimator(CharRNNClassifier())
