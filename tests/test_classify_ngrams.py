"""The n-gram component: a TF-IDF + logistic-regression model blended with the RNN."""

import json
import shutil

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import f1_score

from charrnn.classification import (
    CharRNNClassifier,
    TrainingOptions,
    load_classifier,
    save_classifier,
    train_classifier,
)
from charrnn.classification import ngrams as ngrams_module
from charrnn.classification.ngrams import NgramModel, NgramSettings
from charrnn.classification.predict import log_softmax
from charrnn.classification.train import _validation_split
from charrnn.cli import main
from charrnn.errors import CharRNNError
from charrnn.files import CheckpointError

#: Each class is told by the word it holds, anywhere among random letters.
CUES = {"lord": ["king", "duke", "lord"], "love": ["rose", "kiss", "dear"], "war": ["sword", "blood", "fight"]}
TINY = {"hidden_size": 8, "embedding_size": 4, "ensemble": 1}


def word_task(rng, count: int):
    """Texts of 20-30 random letters and spaces with one cue word somewhere; the word says the class."""
    texts, labels = [], []
    for i in range(count):
        label = list(CUES)[i % len(CUES)]
        noise = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz     "), rng.integers(20, 30)))
        cut = rng.integers(0, len(noise))
        texts.append(f"{noise[:cut]} {rng.choice(CUES[label])} {noise[cut:]}")
        labels.append(label)
    return texts, labels


def options(**changes):
    settings = {"epochs": 2, "batch_size": 16, "validation_fraction": 0.25, "select_epoch": False,
                "logit_adjustment": "post-hoc", "seed": 0, "device": "cpu"}
    return TrainingOptions(**{**settings, **changes})


def test_the_blend_learns_a_word_cue_the_tiny_rnn_cannot():
    rng = np.random.default_rng(0)
    train_texts, train_labels = word_task(rng, 240)
    test_texts, test_labels = word_task(rng, 150)
    rnn = train_classifier(train_texts, train_labels, **TINY, options=options())
    blend = train_classifier(train_texts, train_labels, **TINY, options=options(ngrams=True))
    rnn_f1 = f1_score(test_labels, rnn.predict(test_texts), average="macro")
    blend_f1 = f1_score(test_labels, blend.predict(test_texts), average="macro")
    # Two epochs of an 8-unit RNN find no word in the noise; the n-grams hold the words.
    assert rnn_f1 < 0.6
    assert blend_f1 > 0.9 and blend_f1 > rnn_f1 + 0.3
    chosen = blend.selection
    assert chosen["ngram_weight"] > 0 and blend.model.config.ngram_weight == chosen["ngram_weight"]
    assert chosen["epoch"] == 2  # select_epoch=False: the last epoch, w and τ chosen on the validation split
    assert chosen["ngrams"] == NgramSettings().to_dict() == {"analyzer": "char_wb", "ngram_range": [2, 5], "C": 10.0}
    assert chosen["ngram_cv"] == []  # no search unless asked for


def test_choices_see_the_training_side_only_and_the_weight_only_the_validation_split(monkeypatch):
    """By construction: every n-gram fit and score is recorded, and checked against the split."""
    rng = np.random.default_rng(1)
    texts, labels = word_task(rng, 120)
    outside, _ = word_task(np.random.default_rng(99), 30)  # a "test fold": never given to training
    fits, scores = [], []
    fit, log_proba = NgramModel.fit.__func__, NgramModel.log_proba

    def recording_fit(cls, fit_texts, *args, **kwargs):
        model = fit(cls, fit_texts, *args, **kwargs)
        model.fitted_on = set(fit_texts)
        fits.append(list(fit_texts))
        return model

    def recording_log_proba(self, scored):
        scored = list(scored)
        scores.append((getattr(self, "fitted_on", None), scored))
        return log_proba(self, scored)

    monkeypatch.setattr(NgramModel, "fit", classmethod(recording_fit))
    monkeypatch.setattr(NgramModel, "log_proba", recording_log_proba)
    classifier = train_classifier(texts, labels, **TINY, options=options(ngrams=True, ngram_search=True))
    # The search: every setting of the grid, cross-validated (3 folds), the best kept.
    cv = classifier.selection["ngram_cv"]
    assert len(cv) == len(ngrams_module.SETTINGS_GRID) and len(fits) == 3 * len(cv) + 2
    best = max(cv, key=lambda setting: setting["cv_macro_f1"])
    assert classifier.selection["ngrams"] == {key: best[key] for key in ("analyzer", "ngram_range", "C")}
    assert classifier.ngrams.settings.to_dict() == classifier.selection["ngrams"]
    y = np.searchsorted(sorted(set(labels)), labels)
    inner, validation = _validation_split(texts, y, 0.25, 0)
    inner_texts, validation_texts = {texts[i] for i in inner}, {texts[i] for i in validation}
    # The settings' cross-validation and the model that scores the validation split: inner rows only.
    assert all(set(fitted) <= inner_texts for fitted in fits[:-1])
    # The last fit, the model kept, is on every training text.
    assert sorted(fits[-1]) == sorted(texts)
    for fitted_on, scored in scores:  # every score before the last fit is of texts the model was not fitted on
        assert not fitted_on & set(scored)
        assert set(scored) <= set(texts)
    validation_scores = [scored for _, scored in scores if set(scored) == validation_texts]
    assert len(validation_scores) == 1  # w and τ are chosen from the one scoring of the validation split
    assert classifier.selection["validation_texts"] == len(validation)
    assert not set(outside) & {text for fitted in fits for text in fitted}


def test_cross_fitting_chooses_on_out_of_fold_scores_and_joins_the_networks(monkeypatch):
    rng = np.random.default_rng(8)
    train_texts, train_labels = word_task(rng, 150)
    test_texts, test_labels = word_task(rng, 90)
    scored = []
    log_proba = NgramModel.log_proba
    fit = NgramModel.fit.__func__

    def recording_fit(cls, fit_texts, *args, **kwargs):
        model = fit(cls, fit_texts, *args, **kwargs)
        model.fitted_on = set(fit_texts)
        return model

    def recording_log_proba(self, texts):
        texts = list(texts)
        scored.append((self.fitted_on, texts))
        return log_proba(self, texts)

    monkeypatch.setattr(NgramModel, "fit", classmethod(recording_fit))
    monkeypatch.setattr(NgramModel, "log_proba", recording_log_proba)
    blend = train_classifier(train_texts, train_labels, **TINY,
                             options=options(ngrams=True, validation_fraction=0.0, cross_fit=3))
    # Each fold's n-gram model scores only the texts it was not fitted on; together, every training text once.
    folds = scored[:3]
    assert all(not fitted & set(texts) for fitted, texts in folds)
    assert sorted(text for _, texts in folds for text in texts) == sorted(train_texts)
    chosen = blend.selection
    assert chosen["cross_fit"] == 3 and "validation_texts" not in chosen and chosen["ngram_weight"] > 0
    assert blend.model.config.ensemble == 3  # the three networks, one each, joined
    rnn = train_classifier(train_texts, train_labels, **TINY, options=options(validation_fraction=0.0, cross_fit=3))
    assert rnn.selection["cross_fit"] == 3 and rnn.ngrams is None
    blend_f1 = f1_score(test_labels, blend.predict(test_texts), average="macro")
    assert blend_f1 > 0.9 and blend_f1 > f1_score(test_labels, rnn.predict(test_texts), average="macro") + 0.3


def test_joined_networks_predict_their_mean_probability():
    from charrnn.classification import CharClassifier, ClassifierConfig
    from charrnn.classification.model import encode_texts, pad_batch
    from charrnn.classification.train import _join_members
    from charrnn.vocabulary import Vocabulary

    vocabulary = Vocabulary("abcd")
    config = ClassifierConfig(vocabulary.size, hidden_size=5, embedding_size=3, num_classes=3, ensemble=2,
                              bidirectional=True)
    torch.manual_seed(0)
    first, second = CharClassifier(config).eval(), CharClassifier(config).eval()
    joined = CharClassifier(ClassifierConfig(**{**config.to_dict(), "ensemble": 4})).eval()
    joined.load_state_dict(_join_members([first.state_dict(), second.state_dict()], 2))
    ids, lengths = pad_batch(encode_texts(vocabulary, ["abc", "d", "ccba"]))
    with torch.no_grad():
        members = torch.cat([first.member_logits(ids, lengths), second.member_logits(ids, lengths)])  # (4, B, C)
        expected = torch.log(torch.softmax(members, dim=2).mean(dim=0))
        torch.testing.assert_close(joined(ids, lengths), expected, rtol=0, atol=1e-6)


def test_without_a_validation_split_the_weight_is_the_given_one_or_the_default():
    rng = np.random.default_rng(2)
    texts, labels = word_task(rng, 60)
    given = train_classifier(texts, labels, **TINY, options=options(ngrams=True, validation_fraction=0.0,
                                                                    ngram_weight=np.float64(0.3)))
    assert given.model.config.ngram_weight == 0.3 and given.selection["validation_texts"] == 0
    default = train_classifier(texts, labels, **TINY, options=options(ngrams=True, validation_fraction=0.0))
    assert default.model.config.ngram_weight == ngrams_module.DEFAULT_WEIGHT
    alone = train_classifier(texts, labels, **TINY, options=options(ngrams=True, ngram_weight=0.0))
    assert alone.ngrams is None and alone.model.config.ngram_weight == 0.0  # nothing to keep
    lines = []
    few = train_classifier(texts[:2], labels[:2], **TINY, log=lines.append,  # two texts: no 3 folds
                           options=options(ngrams=True, validation_fraction=0.0, cross_fit=3))
    assert few.model.config.ensemble == 1 and few.model.config.ngram_weight == ngrams_module.DEFAULT_WEIGHT
    assert any("too few texts for 3 folds; one network on every text" in line for line in lines)
    # A class smaller than the folds is missing from some of them, which cross-fitting allows.
    small = train_classifier(texts[:7], labels[:7], **TINY, options=options(ngrams=True, validation_fraction=0.0,
                                                                            cross_fit=3))
    assert small.model.config.ensemble == 3 and small.selection["cross_fit"] == 3


@pytest.mark.parametrize("changes, message", [
    ({"ngrams": "yes"}, "--ngrams must be true or false, got 'yes'"),
    ({"ngrams": 1}, "--ngrams must be true or false, got 1"),
    ({"ngram_search": "no"}, "--ngram-search must be true or false, got 'no'"),
    ({"select_epoch": None}, "--select-epoch must be true or false, got None"),
    ({"ngram_weight": 1.5}, r"--ngram-weight must be a number in \[0.0, 1.0\], got 1.5"),
    ({"ngram_weight": True}, r"--ngram-weight must be a number in \[0.0, 1.0\], got True"),
    ({"ngram_weight": "half"}, r"--ngram-weight must be a number in \[0.0, 1.0\], got 'half'"),
    ({"cross_fit": 1}, r"--cross-fit must be 0 \(off\) or a number of folds >= 2, got 1"),
    ({"cross_fit": "3"}, "--cross-fit must be an integer >= 0, got '3'"),
    ({"cross_fit": 3, "validation_fraction": 0.2},
     "--cross-fit and --validation-fraction are two ways of choosing tau and the n-gram weight; give one of them"),
])
def test_bad_values_are_one_line_value_errors_raised_by_fit(changes, message):
    model = CharRNNClassifier(**changes)  # scikit-learn style: accepted here, checked in fit
    with pytest.raises(ValueError, match=f"^{message}$") as raised:
        model.fit(["ab", "ba"], ["a", "b"])
    assert isinstance(raised.value, CharRNNError) and "\n" not in str(raised.value)


def test_numpy_values_are_accepted_and_clone_round_trips():
    model = CharRNNClassifier(ngrams=np.bool_(True), ngram_weight=np.float32(0.25), select_epoch=np.bool_(False),
                              cross_fit=np.int64(3))
    TrainingOptions(ngrams=model.ngrams, ngram_weight=model.ngram_weight, select_epoch=model.select_epoch,
                    cross_fit=model.cross_fit)
    params = clone(model).get_params()
    assert (params["ngrams"], params["ngram_weight"], params["select_epoch"]) == (True, 0.25, False)
    assert clone(model).set_params(ngrams=False).get_params()["ngrams"] is False
    assert CharRNNClassifier().get_params()["ngrams"] is False  # off unless asked for
    fitted = CharRNNClassifier(**TINY, epochs=1, batch_size=8, validation_fraction=0.25, ngrams=True,
                               device="cpu").fit(*word_task(np.random.default_rng(3), 48))
    assert fitted.predict_proba(["a king rides"]).shape == (1, 3)
    assert clone(fitted).get_params() == fitted.get_params()


@pytest.mark.parametrize("classes", [2, 3])
def test_checkpoint_round_trips_and_refuses_a_tampered_ngram_model(tmp_path, classes):
    rng = np.random.default_rng(4)
    texts, labels = word_task(rng, 60)
    keep = [i for i, label in enumerate(labels) if label in list(CUES)[:classes]]
    texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
    classifier = train_classifier(texts, labels, **TINY, options=options(ngrams=True))
    assert classifier.ngrams is not None
    save_classifier(classifier, tmp_path / "model")
    folder = tmp_path / "model"
    assert (folder / "ngrams.json").is_file() and (folder / "ngrams.safetensors").is_file()
    saved_weight = json.loads((folder / "config.json").read_text())["model"]["ngram_weight"]
    assert saved_weight == classifier.model.config.ngram_weight > 0
    queries = ["a sword in the dark", "zzz", "", "kiss the rose"]
    # Each part is divided by the temperature chosen with the weight, and saved with it.
    saved_model = json.loads((folder / "config.json").read_text())["model"]
    config = classifier.model.config
    temperatures = (config.rnn_temperature, config.ngram_temperature)
    assert (saved_model["rnn_temperature"], saved_model["ngram_temperature"]) == temperatures
    assert temperatures == tuple(classifier.selection["temperatures"]) and temperatures != (1.0, 1.0)
    by_hand = ((1 - saved_weight) * log_softmax(classifier.raw_logits(queries) / temperatures[0])
               + saved_weight * classifier.ngrams.log_proba(queries) / temperatures[1])
    if config.logit_offset() is not None:
        by_hand = by_hand - config.logit_offset()
    assert np.allclose(classifier.predict_proba(queries), np.exp(log_softmax(by_hand)))
    loaded = load_classifier(folder)
    assert np.array_equal(loaded.predict_proba(queries), classifier.predict_proba(queries))
    assert loaded.ngrams.settings == classifier.ngrams.settings

    from charrnn.files import load_tensors, save_tensors

    saved = json.loads((folder / "ngrams.json").read_text())
    tensors = load_tensors(folder / "ngrams.safetensors")
    tampered = [
        ("ngrams.json", {**saved, "terms": saved["terms"][:-1]}, None, r"tensor idf has shape \[\d+\], .* implies"),
        ("ngrams.json", {**saved, "terms": saved["terms"][:-1] + saved["terms"][:1]}, None, "distinct"),
        ("ngrams.json", {**saved, "classes": [0, classes + 5]}, None, "class ids below"),
        ("ngrams.json", {**saved, "settings": {**saved["settings"], "analyzer": "word"}}, None, "bad n-gram settings"),
        ("ngrams.safetensors", None, {**tensors, "coef": tensors["coef"][:, :-1].contiguous()},
         "tensor coef has shape"),
        ("ngrams.safetensors", None, {**tensors, "intercept": torch.full_like(tensors["intercept"], float("nan"))},
         "finite"),
        ("ngrams.safetensors", None, {"idf": tensors["idf"]}, "expected the tensors"),
    ]
    for name, values, new_tensors, message in tampered:
        broken = tmp_path / f"broken-{name}-{message[:8]}".replace(" ", "_").replace("\\", "")
        broken.mkdir()
        for file in folder.iterdir():
            (broken / file.name).write_bytes(file.read_bytes())
        if values is not None:
            (broken / name).write_text(json.dumps(values))
        else:
            save_tensors(broken / name, new_tensors)
        with pytest.raises(CheckpointError, match=message) as raised:
            load_classifier(broken)
        assert "\n" not in str(raised.value)
    for bad in (0.0, -1.0, "2"):  # a temperature must be a positive number
        broken = tmp_path / f"broken-temperature-{bad}"
        shutil.copytree(folder, broken)
        written = json.loads((broken / "config.json").read_text())
        written["model"]["rnn_temperature"] = bad
        (broken / "config.json").write_text(json.dumps(written))
        with pytest.raises(CheckpointError, match="rnn.temperature must be a number > 0"):
            load_classifier(broken)
    (folder / "ngrams.safetensors").unlink()
    with pytest.raises(CheckpointError, match="ngrams.safetensors"):
        load_classifier(folder)


def test_a_checkpoint_saved_before_ngrams_loads(tmp_path):
    texts, labels = word_task(np.random.default_rng(5), 30)
    classifier = train_classifier(texts, labels, **TINY, options=TrainingOptions(epochs=1, device="cpu"))
    save_classifier(classifier, tmp_path / "old")
    path = tmp_path / "old" / "config.json"
    written = json.loads(path.read_text())
    del written["model"]["ngram_weight"]  # as checkpoints were written before the n-gram component
    path.write_text(json.dumps(written))
    old = load_classifier(tmp_path / "old")
    assert old.ngrams is None and old.model.config.ngram_weight == 0.0
    assert np.array_equal(old.predict_proba(texts[:5]), classifier.predict_proba(texts[:5]))


def test_ngram_model_matches_scikit_learns_own_predictions():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    texts, labels = word_task(np.random.default_rng(6), 90)
    y = np.searchsorted(sorted(set(labels)), labels)
    settings = NgramSettings("char", (1, 3), 3.0)
    model = NgramModel.fit(texts, y, 4, settings)  # a fourth class the regression never sees
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3))
    regression = LogisticRegression(C=3.0, max_iter=3000).fit(vectorizer.fit_transform(texts), y)
    expected = regression.predict_log_proba(vectorizer.transform(texts[:10]))
    got = model.log_proba(texts[:10])
    np.testing.assert_allclose(got[:, :3], expected, atol=1e-5)  # float32 coefficients
    assert np.all(got[:, 3] == ngrams_module.LOG_FLOOR)
    with pytest.raises(CharRNNError, match="ngram_range must be two integers"):
        NgramSettings("char", (3,), 1.0)
    with pytest.raises(CharRNNError, match="analyzer must be one of char, char_wb"):
        NgramSettings("word", (1, 2), 1.0)


def test_classify_train_with_ngrams_then_predict(tmp_path, capsys):
    import csv

    folder = tmp_path / "data"
    folder.mkdir()
    texts, labels = word_task(np.random.default_rng(7), 90)
    for label in CUES:
        (folder / f"{label}.txt").write_text("\n".join(t for t, l in zip(texts, labels) if l == label) + "\n")
    out = tmp_path / "model"
    status = main(["classify", "train", str(folder), "--out", str(out), "--ngrams", "--validation-fraction", "0.25",
                   "--no-select-epoch", "--logit-adjustment", "post-hoc", "--epochs", "2", "--hidden-size", "8",
                   "--embedding-size", "4", "--ensemble", "1", "--device", "cpu", "--quiet"])
    assert status == 0
    assert (out / "ngrams.json").is_file()
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["training"]["ngrams"] is True and evaluation["model"]["ngram_weight"] > 0
    capsys.readouterr()
    csv_path = tmp_path / "labels.csv"
    status = main(["classify", "predict", str(out), "a sword and blood", "kiss the rose", "--output", str(csv_path)])
    assert status == 0
    rows = list(csv.reader(csv_path.open(encoding="utf-8", newline="")))
    assert rows[0] == ["text", "label", "p_lord", "p_love", "p_war"]
    assert [row[1] for row in rows[1:]] == ["war", "love"]
    status = main(["classify", "predict", str(out), "the duke"])
    assert status == 0 and capsys.readouterr().out.startswith("the duke\tlord ")
    # --overwrite replaces a run with n-grams by one without
    status = main(["classify", "train", str(folder), "--out", str(out), "--overwrite", "--epochs", "1",
                   "--hidden-size", "4", "--embedding-size", "2", "--ensemble", "1", "--device", "cpu", "--quiet"])
    assert status == 0 and not (out / "ngrams.json").exists() and not (out / "ngrams.safetensors").exists()
    with pytest.raises(SystemExit):
        main(["classify", "train", str(folder), "--ngram-weight", "2"])
    assert "--ngram-weight must be a number in [0.0, 1.0], got 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["classify", "train", str(folder), "--cross-fit", "1"])
    assert "--cross-fit must be 0 (off) or a number of folds >= 2, got 1" in capsys.readouterr().err


def test_scikit_learns_checks_pass_with_ngrams_and_cross_fitting():
    """scikit-learn's own checks (as tests/test_sklearn_estimator_checks.py runs them) on the best setting's code."""
    import warnings

    from sklearn.utils.estimator_checks import check_estimator
    from test_sklearn_estimator_checks import EXPECTED_FAILURES, NumbersAsText

    estimator = NumbersAsText(hidden_size=4, embedding_size=2, epochs=2, batch_size=16, ensemble=1, device="cpu",
                              random_state=0, ngrams=True, cross_fit=3, logit_adjustment="post-hoc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(estimator, on_fail=None, expected_failed_checks=EXPECTED_FAILURES)
    failed = [(result["check_name"], str(result["exception"])[:200]) for result in results
              if result["status"] == "failed"]
    assert len(results) > 50 and failed == []
