"""``CharRNNClassifier`` and the splitters as scikit-learn expects them to behave (issue 13's list)."""


import numpy as np
import pytest
import sklearn
import torch
from sklearn.exceptions import DataConversionWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.utils import get_tags

from charrnn.classification import (
    CharRNNClassifier,
    StratifiedDuplicateKFold,
    StratifiedDuplicateShuffleSplit,
)
from charrnn.classification.splits import SplitError
from charrnn.errors import CharRNNError, DataError
from charrnn.splits import Sklearn019StratifiedKFold

TEXTS = ["ab", "ba", "aab", "bba", "aaab", "bbba", "abab", "baba"] * 3
LABELS = ["a", "b"] * 12


def tiny(**settings):
    """A classifier that trains in a few milliseconds."""
    return CharRNNClassifier(**{"hidden_size": 4, "embedding_size": 2, "epochs": 2, "batch_size": 8, "ensemble": 1,
                                "validation_fraction": 0.0, "device": "cpu", **settings})


def test_predict_before_fit_is_not_fitted_error():
    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        with pytest.raises(NotFittedError):
            getattr(CharRNNClassifier(), method)(["ab"])


def test_fit_leaves_torchs_global_generator_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    for random_state in (0, 7):
        torch.manual_seed(123)
        tiny(random_state=random_state, dropout=0.5).fit(TEXTS, LABELS)
        assert torch.equal(torch.rand(3), expected)


def test_random_state_int_none_and_randomstate():
    first = tiny(random_state=3).fit(TEXTS, LABELS).predict_proba(["ab", "bab"])
    again = tiny(random_state=3).fit(TEXTS, LABELS).predict_proba(["ab", "bab"])
    assert np.array_equal(first, again)
    tiny(random_state=None).fit(TEXTS, LABELS)
    from_state = [tiny(random_state=np.random.RandomState(0)).fit(TEXTS, LABELS).predict_proba(["ab"])
                  for _ in range(2)]
    assert np.array_equal(*from_state)
    with pytest.raises(ValueError, match="random_state"):
        tiny(random_state="seven").fit(TEXTS, LABELS)


@pytest.mark.parametrize("X, y, message", [
    (TEXTS[:3], LABELS[:2], "inconsistent numbers of samples"),
    ([], [], "no texts"),
    (TEXTS[:4], ["a"] * 4, "one class only"),
    ("abcd", ["a", "b", "a", "b"], "got a single str"),
    ([1, 2, 3, 4], ["a", "b", "a", "b"], "element 0 is int 1"),
    (np.arange(8.0).reshape(4, 2), ["a", "b", "a", "b"], "1-D sequence of texts"),
    (["ab", None, "ba", "bb"], ["a", "b", "a", "b"], "element 1 is NoneType"),
    (TEXTS[:4], [0.5, 1.5, 2.25, 3.0], "'continuous' targets"),
    (TEXTS[:2], [[0, 1], [1, 0]], "'multilabel-indicator' targets"),
])
def test_invalid_data_is_a_value_error(X, y, message):
    with pytest.raises(ValueError, match=message):
        tiny().fit(X, y)


@pytest.mark.parametrize("settings, message", [
    ({"epochs": 0}, "--epochs must be a positive integer, got 0"),
    ({"cell": "transformer"}, "--cell must be one of"),
    ({"hidden_size": True}, "--hidden-size must be a positive integer, got True"),
    ({"bidirectional": "yes"}, "--bidirectional must be true or false"),
    ({"pooling": "mean+median"}, "--pooling must be one of final, mean, max"),
    ({"logit_adjustment": "both"}, "--logit-adjustment must be one of none, post-hoc, loss"),
    ({"validation_fraction": 1.0}, "--validation-fraction must be a number in"),
    ({"class_weight": "inverse"}, "--class-weight must be one of"),
])
def test_invalid_parameters_are_value_errors_raised_by_fit(settings, message):
    model = tiny(**settings)  # scikit-learn's rule: __init__ only stores
    with pytest.raises(ValueError, match=message) as raised:
        model.fit(TEXTS, LABELS)
    assert isinstance(raised.value, CharRNNError)
    assert issubclass(DataError, ValueError)


def test_numpy_hyper_parameters_and_grid_search():
    model = tiny(epochs=np.int64(1), hidden_size=np.int32(4), learning_rate=np.float32(0.01),
                 bidirectional=np.bool_(True)).fit(TEXTS, LABELS)
    assert model.predict(["ab"]).shape == (1,)
    search = GridSearchCV(tiny(), {"epochs": np.arange(1, 3)}, cv=StratifiedDuplicateKFold(2, random_state=0))
    search.fit(np.array(TEXTS), np.array(LABELS))
    assert search.best_params_["epochs"] in (1, 2)


def test_a_column_of_labels_warns_and_is_raveled():
    with pytest.warns(DataConversionWarning):
        model = tiny().fit(TEXTS, np.array(LABELS).reshape(-1, 1))
    assert list(model.classes_) == ["a", "b"]


def test_tags_say_strings_not_arrays():
    tags = get_tags(CharRNNClassifier())
    assert tags.input_tags.string and not tags.input_tags.two_d_array
    assert tags.estimator_type == "classifier"


def test_predict_log_proba_and_integer_labels():
    model = tiny().fit(TEXTS, np.array([0, 1] * 12))
    log_probability = model.predict_log_proba(["ab", "ba"])
    np.testing.assert_allclose(np.exp(log_probability), model.predict_proba(["ab", "ba"]))
    assert model.classes_.tolist() == [0, 1] and model.predict(["ab"]).dtype.kind == "i"
    assert model.decision_function(["ab", "ba"]).shape == (2,)


def test_sample_weight_zero_drops_texts():
    # Texts ending in "a" are labelled "b" only where they weigh nothing: weighted, "a" wins them.
    texts = ["xa", "ya", "za", "xb", "yb", "zb"] * 8 + ["xa", "ya", "za"] * 8
    labels = ["a", "a", "a", "b", "b", "b"] * 8 + ["b"] * 24
    weights = [1.0] * 48 + [0.0] * 24
    settings = {"epochs": 30, "learning_rate": 0.05, "hidden_size": 8, "embedding_size": 4, "random_state": 0}
    weighted = tiny(**settings).fit(texts, labels, sample_weight=weights)
    assert weighted.predict(["xa", "za", "xb"]).tolist() == ["a", "a", "b"]
    unweighted = tiny(**settings).fit(texts, labels)
    assert unweighted.predict_proba(["xa"])[0, 1] > weighted.predict_proba(["xa"])[0, 1]
    with pytest.raises(ValueError, match="sample_weight"):
        tiny().fit(TEXTS, LABELS, sample_weight=[-1.0] * len(TEXTS))


def test_class_weight_dict():
    texts = ["xa", "ya", "za", "wa"] * 10 + ["xb", "yb", "zb", "wb"]
    labels = ["a"] * 40 + ["b"] * 4
    settings = {"epochs": 2, "learning_rate": 0.02, "hidden_size": 8, "embedding_size": 4, "random_state": 0}
    plain = tiny(class_weight=None, **settings).fit(texts, labels).predict_proba(["xb"])[0, 1]
    weighted = tiny(class_weight={"b": 10.0}, **settings).fit(texts, labels).predict_proba(["xb"])[0, 1]
    assert weighted > plain + 0.05
    # A dict holding the balanced weights is the same run as class_weight="balanced".
    balanced = {"a": 44 / (2 * 40), "b": 44 / (2 * 4)}
    assert np.array_equal(tiny(class_weight=balanced, **settings).fit(texts, labels).predict_proba(["xb", "wa"]),
                          tiny(class_weight="balanced", **settings).fit(texts, labels).predict_proba(["xb", "wa"]))
    with pytest.raises(ValueError, match="class_weight names labels that are not classes: 'c'"):
        tiny(class_weight={"c": 2.0}).fit(texts, labels)


# -- splitters ------------------------------------------------------------------------------------
def test_sklearn019_refuses_an_empty_test_fold_and_warns_of_a_small_class():
    with pytest.raises(ValueError, match="n_splits=3 cannot be greater than the number of members in each class"):
        list(Sklearn019StratifiedKFold(3).split(np.zeros(4), [0, 0, 1, 1]))
    with pytest.warns(UserWarning, match="least populated class in y has only 2 members"):
        folds = list(Sklearn019StratifiedKFold(3).split(np.zeros(8), [0, 0, 1, 1, 1, 1, 1, 1]))
    assert all(len(test) for _, test in folds)


@pytest.mark.parametrize("splitter", [Sklearn019StratifiedKFold, StratifiedDuplicateKFold])
def test_shuffle_must_be_a_bool_and_random_state_needs_it(splitter):
    with pytest.raises(ValueError, match="random_state has no effect since shuffle is False"):
        splitter(3, shuffle=False, random_state=0)
    with pytest.raises(TypeError, match="shuffle must be True or False; got 1"):
        splitter(3, shuffle=1)
    splitter(3, shuffle=False)


def test_shuffle_split_takes_int_sizes():
    texts = [f"t{i}" for i in range(40)] + ["t0"]
    labels = ["x"] * 30 + ["y"] * 10 + ["x"]
    train, test = next(StratifiedDuplicateShuffleSplit(test_size=8, train_size=20, random_state=0).split(texts, labels))
    assert len({texts[i] for i in test}) == 8 and len({texts[i] for i in train}) == 20
    assert not {texts[i] for i in train} & {texts[i] for i in test}
    train, test = next(StratifiedDuplicateShuffleSplit(test_size=0.25, train_size=0.5, random_state=0)
                       .split(texts, labels))
    assert len({texts[i] for i in test}) == 10 and len({texts[i] for i in train}) == 20
    for bad in (0, True, 1.5, "0.2"):
        with pytest.raises(SplitError, match="test_size"):
            StratifiedDuplicateShuffleSplit(test_size=bad)
    with pytest.raises(SplitError, match="at most 1"):
        StratifiedDuplicateShuffleSplit(test_size=0.6, train_size=0.6)


@pytest.mark.parametrize("splitter", [StratifiedDuplicateKFold(3, random_state=0),
                                      StratifiedDuplicateShuffleSplit(2, test_size=0.3, random_state=0)])
def test_groups_reach_the_splitters_through_metadata_routing(splitter):
    from sklearn.dummy import DummyClassifier

    X = np.zeros((30, 1))
    y = np.array([0, 1] * 15)
    groups = np.repeat(np.arange(10), 3)  # three samples per group, labels mixed inside
    with sklearn.config_context(enable_metadata_routing=True):
        result = cross_validate(DummyClassifier(), X, y, cv=splitter, params={"groups": groups},
                                return_indices=True)
    for train, test in zip(result["indices"]["train"], result["indices"]["test"]):
        assert not set(groups[train]) & set(groups[test])


def test_checks_take_numpy_numbers_and_refuse_bools():
    from charrnn.checks import check_integer, check_number

    assert check_integer("epochs", np.int64(3)) == 3 and type(check_integer("epochs", np.uint8(3))) is int
    assert check_number("dropout", np.float32(0.25), low=0.0, high=1.0) == 0.25
    for flag in (True, np.bool_(True)):
        with pytest.raises(ValueError, match="--epochs must be a positive integer"):
            check_integer("epochs", flag)
    with pytest.raises(ValueError, match="--dropout must be a number"):
        check_number("dropout", False, low=0.0, high=1.0)
