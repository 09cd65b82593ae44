"""The classifier model, its training loop, predictions and checkpoints."""

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from charrnn.classification import (
    CharClassifier,
    ClassifierConfig,
    TrainingOptions,
    load_classifier,
    save_classifier,
    train_classifier,
)
from charrnn.classification.model import encode_texts, pad_batch
from charrnn.classification.train import _epoch_order, balanced_class_weights
from charrnn.errors import CharRNNError
from charrnn.files import CheckpointError
from charrnn.vocabulary import Vocabulary

VOCABULARY = Vocabulary("abcdefghijklmnopqrstuvwxyz")
NAMES = ["anna", "christopher", "bob", "maximiliana", "ed"]


@pytest.mark.parametrize("cell, num_layers, bidirectional, pooling", [
    *[(cell, layers, False, "final") for cell in ("rnn", "lstm", "gru", "gru-reset-after") for layers in (1, 2)],
    *[(cell, layers, True, pooling) for cell in ("lstm", "gru") for layers in (1, 2)
      for pooling in ("final", "mean+max", "final+mean+max")],
    ("gru-reset-after", 1, False, "max"), ("rnn", 1, True, "mean"), ("lstm", 1, True, "final+max+ensemble"),
])
def test_padding_never_changes_a_result(cell, num_layers, bidirectional, pooling):
    torch.manual_seed(0)
    ensemble = 3 if pooling.endswith("+ensemble") else 1
    config = ClassifierConfig(VOCABULARY.size, cell=cell, hidden_size=12, num_layers=num_layers, embedding_size=6,
                              num_classes=3, bidirectional=bidirectional, pooling=pooling.removesuffix("+ensemble"),
                              ensemble=ensemble)
    model = CharClassifier(config).eval()
    with torch.no_grad():
        ids, lengths = pad_batch(encode_texts(VOCABULARY, NAMES))  # (5, 11), (5,)
        batch = model(ids, lengths)  # (5, 3)
        alone = torch.cat([model(*pad_batch(encode_texts(VOCABULARY, [name]))) for name in NAMES])
        # Whatever fills the padding, and however much of it, the logits are the same bits.
        garbage = torch.randint(0, VOCABULARY.size + 1, (len(NAMES), ids.shape[1] + 7))
        garbage[:, : ids.shape[1]] = torch.where(torch.arange(ids.shape[1]) < lengths[:, None], ids,
                                                 garbage[:, : ids.shape[1]])
        padded_with_garbage = model(garbage, lengths)
    assert torch.equal(batch, padded_with_garbage)
    # Alone, the same name is a batch of one: the same math, up to float32 rounding of the
    # matrix products, which the kernels block differently for other batch sizes.
    torch.testing.assert_close(alone, batch, rtol=0, atol=1e-6)


def test_unknown_characters_get_their_own_row():
    encoded = encode_texts(VOCABULARY, ["aé", ""])
    assert encoded[0].tolist() == [0, VOCABULARY.size]
    assert encoded[1].tolist() == []
    config = ClassifierConfig(VOCABULARY.size, hidden_size=4, num_layers=1, embedding_size=3)
    assert CharClassifier(config).embedding.num_embeddings == VOCABULARY.size + 1


def test_config_checks():
    with pytest.raises(CharRNNError, match="--num-classes must be an integer >= 2, got 1"):
        ClassifierConfig(5, num_classes=1)
    with pytest.raises(CharRNNError, match="cell must be one of"):
        ClassifierConfig(5, cell="transformer")
    assert ClassifierConfig.from_dict(ClassifierConfig(5, num_classes=4).to_dict()).num_classes == 4
    with pytest.raises(CharRNNError, match="--class-weight must be one of None, balanced, got 'inverse'"):
        TrainingOptions(class_weight="inverse")
    with pytest.raises(CharRNNError, match="decay must be one of"):
        TrainingOptions(decay="step")


def imbalanced_task(rng, common: int, rare: int):
    """Strings over a-d; the rare class is exactly those ending in "ab" (about 50:1 in training)."""
    texts, labels = [], []
    while len(texts) < common:
        text = "".join(rng.choice(list("abcd"), rng.integers(4, 9)))
        if not text.endswith("ab"):
            texts.append(text)
            labels.append("common")
    for _ in range(rare):
        texts.append("".join(rng.choice(list("abcd"), rng.integers(2, 7))) + "ab")
        labels.append("rare")
    return texts, labels


@pytest.mark.parametrize("seed", [0, 1])
def test_class_weighting_raises_macro_f1_on_a_50_to_1_task(seed):
    rng = np.random.default_rng(seed)
    train_texts, train_labels = imbalanced_task(rng, 500, 10)
    test_texts, test_labels = imbalanced_task(rng, 300, 60)
    scores = {}
    for weighting in (None, "balanced"):
        options = TrainingOptions(epochs=4, batch_size=32, learning_rate=1e-2, class_weight=weighting,
                                  seed=seed, device="cpu")
        classifier = train_classifier(train_texts, train_labels, hidden_size=16, embedding_size=8,
                                      options=options)
        scores[weighting] = f1_score(test_labels, classifier.predict(test_texts), average="macro")
    # Unweighted, 4 epochs teach the prior only (every text "common", macro-F1 ≈ 0.45);
    # weighted, the rare class's 10 examples count as much as the 500 others and are learnt.
    assert scores[None] < 0.6
    assert scores["balanced"] > 0.75
    assert scores["balanced"] > scores[None] + 0.2


def test_balanced_sampler_draws_classes_equally_and_helps():
    y = np.array([0] * 980 + [1] * 20)
    order = _epoch_order(y, balanced=True, generator=torch.Generator().manual_seed(0))
    assert len(order) == len(y)
    assert 0.4 < (y[order.numpy()] == 1).mean() < 0.6
    assert sorted(_epoch_order(y, False, torch.Generator().manual_seed(0)).tolist()) == list(range(1000))

    rng = np.random.default_rng(0)
    train_texts, train_labels = imbalanced_task(rng, 500, 10)
    test_texts, test_labels = imbalanced_task(rng, 300, 60)
    options = TrainingOptions(epochs=4, batch_size=32, learning_rate=1e-2, balanced_sampler=True, class_weight=None,
                              device="cpu")
    classifier = train_classifier(train_texts, train_labels, hidden_size=16, embedding_size=8, options=options)
    assert f1_score(test_labels, classifier.predict(test_texts), average="macro") > 0.75


def test_balanced_weights_are_scikit_learns():
    weights = balanced_class_weights(np.array([0, 0, 0, 1]), 3)
    assert np.allclose(weights[:2], [4 / (2 * 3), 4 / (2 * 1)])
    assert weights[2] == 1.0  # a class absent from training


def test_learning_rate_decays_to_a_tenth():
    for decay in ("cosine", "linear"):
        options = TrainingOptions(learning_rate=0.01, decay=decay)
        assert options.schedule.rate(0, 0.0) == pytest.approx(0.01)
        assert options.schedule.rate(0, 1.0) == pytest.approx(0.001)
    assert TrainingOptions(learning_rate=0.01, decay="constant").schedule.rate(0, 0.7) == 0.01


def test_training_is_reproducible_and_checkpoint_round_trips(tmp_path):
    texts = ["anna", "maria", "elena", "bob", "john", "peter", "lisa", "mark"]
    labels = ["f", "f", "f", "m", "m", "m", "f", "m"]
    options = TrainingOptions(epochs=3, batch_size=4, seed=3, device="cpu")
    first = train_classifier(texts, labels, cell="gru-reset-after", hidden_size=8, embedding_size=4, options=options)
    second = train_classifier(texts, labels, cell="gru-reset-after", hidden_size=8, embedding_size=4, options=options)
    queries = ["anna", "zoë", "petra", ""]
    probabilities = first.predict_proba(queries)
    assert probabilities.shape == (4, 2)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert np.array_equal(probabilities, second.predict_proba(queries))
    assert first.unknown_characters(queries) == ["z", "ë"]

    save_classifier(first, tmp_path / "model")
    assert sorted(path.name for path in (tmp_path / "model").iterdir()) == [
        "config.json", "labels.json", "model.safetensors", "vocab.json"]
    loaded = load_classifier(tmp_path / "model")
    assert loaded.classes == ["f", "m"]
    assert np.array_equal(loaded.predict_proba(queries), probabilities)
    top = loaded.top_k(["anna"], k=5)[0]
    assert [label for label, _ in top] == sorted(["f", "m"], key=lambda c: -dict(top)[c])
    assert len(top) == 2


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        load_classifier(tmp_path / "missing")
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="not a classifier checkpoint"):
        load_classifier(tmp_path / "lm")
    classifier = train_classifier(["ab", "ba"], ["x", "y"], hidden_size=4, embedding_size=2,
                                  options=TrainingOptions(epochs=1, device="cpu"))
    save_classifier(classifier, tmp_path / "ok")
    (tmp_path / "ok" / "model.safetensors").write_bytes(b"\x80\x04pickled")
    with pytest.raises(CheckpointError, match="pickle file, refused"):
        load_classifier(tmp_path / "ok")


def test_scikit_learn_estimator_in_cross_validation():
    from sklearn.base import clone
    from sklearn.model_selection import cross_validate

    from charrnn.classification import CharRNNClassifier, StratifiedDuplicateKFold

    rng = np.random.default_rng(0)
    texts, labels = imbalanced_task(rng, 60, 30)
    model = CharRNNClassifier(hidden_size=8, embedding_size=4, epochs=6, batch_size=16, learning_rate=0.02,
                              class_weight="balanced", device="cpu")
    assert clone(model).get_params()["class_weight"] == "balanced"
    result = cross_validate(model, texts, labels, cv=StratifiedDuplicateKFold(3, random_state=0),
                            scoring=["f1_macro", "balanced_accuracy"])
    assert len(result["test_f1_macro"]) == 3
    fitted = clone(model).fit(texts, labels)
    assert list(fitted.classes_) == ["common", "rare"]
    assert set(fitted.predict(["abcdab", "cccc"])) <= {"common", "rare"}
    assert fitted.predict_proba(["ab"]).shape == (1, 2)


def test_logit_adjustment_post_hoc_and_loss_raise_macro_f1_on_a_50_to_1_task():
    rng = np.random.default_rng(0)
    train_texts, train_labels = imbalanced_task(rng, 500, 10)
    test_texts, test_labels = imbalanced_task(rng, 300, 60)
    scores, chosen = {}, {}
    for adjustment in ("none", "post-hoc", "loss"):
        options = TrainingOptions(epochs=8, batch_size=32, learning_rate=1e-2, logit_adjustment=adjustment,
                                  tau=None if adjustment != "post-hoc" else 1.0, class_weight=None, seed=0,
                                  device="cpu")
        classifier = train_classifier(train_texts, train_labels, hidden_size=16, embedding_size=8, options=options)
        scores[adjustment] = f1_score(test_labels, classifier.predict(test_texts), average="macro")
        chosen[adjustment] = classifier.model.config.logit_adjustment
    # Unweighted, 8 epochs teach the prior only (macro-F1 0.45). Subtracting log(prior) at
    # prediction moves the boundary of what was learnt (0.65 here); adding it in the loss changes
    # what is learnt, and the rare class's 10 examples are (0.99).
    assert scores["none"] < 0.5
    assert scores["post-hoc"] > scores["none"] + 0.15
    assert scores["loss"] > 0.9
    assert chosen == {"none": 0.0, "post-hoc": 1.0, "loss": 0.0}  # the loss variant predicts from raw logits


def test_epoch_and_tau_are_chosen_on_the_validation_split_only(tmp_path):
    rng = np.random.default_rng(1)
    texts, labels = imbalanced_task(rng, 400, 40)
    seen = []
    options = TrainingOptions(epochs=5, batch_size=32, learning_rate=1e-2, validation_fraction=0.25,
                              logit_adjustment="post-hoc", seed=0, device="cpu")
    classifier = train_classifier(texts, labels, hidden_size=16, embedding_size=8, options=options,
                                  on_epoch_end=lambda epoch, c: seen.append(epoch))
    selection = classifier.selection
    history = selection["history"]
    assert [record["epoch"] for record in history] == seen == [1, 2, 3, 4, 5]
    best = max(history, key=lambda record: (record["val_macro_f1"], -record["val_loss"]))
    assert (selection["epoch"], selection["tau"]) == (best["epoch"], best["tau"])
    assert classifier.model.config.logit_adjustment == selection["tau"]
    # The kept weights are that epoch's: scoring the same validation texts gives its numbers back.
    from charrnn.classification.train import _validation_split

    y = (np.array(labels) == "rare").astype(np.int64)  # class ids: "common" 0, "rare" 1
    train, validation = _validation_split(texts, y, 0.25, 0)
    assert not set(train) & set(validation)
    predicted = classifier.predict([texts[i] for i in validation])
    score = f1_score(y[validation], (np.array(predicted) == "rare").astype(int), average="macro", labels=[0, 1])
    assert score == pytest.approx(best["val_macro_f1"], abs=1e-9)
    # Labels that are noise never improve for long: patience stops the run early.
    noise = rng.permutation(labels).tolist()
    short = train_classifier(texts, noise, hidden_size=16, embedding_size=8,
                             options=TrainingOptions(epochs=30, batch_size=32, learning_rate=1e-2,
                                                     validation_fraction=0.25, patience=2, seed=0, device="cpu"))
    assert len(short.selection["history"]) < 15


def _margin_task(copies: int):
    """Log-probabilities of 2 classes (prior 19:1), ``copies`` times: 190 common texts far on their
    side, 5 rare texts right, 1 rare text just on the common side (τ >= 0.25 moves it across),
    4 rare texts far on the common side."""
    from charrnn.classification.train import log_softmax

    margins = np.array([5.0] * 190 + [-3.0] * 5 + [0.5] + [8.0] * 4)  # logit(common) - logit(rare)
    y = np.array([0] * 190 + [1] * 10)
    margins, y = np.tile(margins, copies), np.tile(y, copies)
    log_proba = log_softmax(np.stack([margins, np.zeros_like(margins)], axis=1))  # (N, 2)
    return log_proba, y, np.array([0.95, 0.05])


@pytest.mark.parametrize("copies, tau", [(1, 0.0), (10, 0.25)])
def test_a_tau_is_kept_only_when_its_gain_is_beyond_the_noise(copies, tau):
    from charrnn.classification.train import TAU_GRID, EpochSelection, clear_gain, macro_f1

    log_proba, y, prior = _margin_task(copies)
    choice = EpochSelection(None, None, y, prior, TAU_GRID).score(log_proba)
    f1 = choice.key[0]
    # τ = 0.25 gains one rare text in ten (+0.043 macro-F1): noise with 10 rare texts, clear with 100.
    assert (choice.weight, choice.tau, choice.temperatures) == (0.0, tau, (1.0, 1.0))  # the RNN alone: not rescaled
    at_zero, at_quarter = (((log_proba - t * np.log(prior)).argmax(axis=1)) for t in (0.0, 0.25))
    assert clear_gain(y, at_quarter, at_zero, 2) is (tau != 0.0)
    assert not clear_gain(y, at_zero, at_quarter, 2)  # a loss is never a clear gain
    assert f1 == pytest.approx(macro_f1(y, at_quarter if tau else at_zero, 2))


def test_bidirectional_pooled_checkpoint_round_trips_and_old_checkpoints_load(tmp_path):
    import json

    texts = ["anna", "maria", "elena", "bob", "john", "peter", "lisa", "mark"] * 2
    labels = ["f", "f", "f", "m", "m", "m", "f", "m"] * 2
    options = TrainingOptions(epochs=2, batch_size=4, logit_adjustment="post-hoc", tau=0.5, device="cpu")
    classifier = train_classifier(texts, labels, hidden_size=6, embedding_size=4, bidirectional=True,
                                  pooling="final+mean+max", options=options)
    save_classifier(classifier, tmp_path / "bi")
    config = json.loads((tmp_path / "bi" / "config.json").read_text())["model"]
    assert config["bidirectional"] is True and config["pooling"] == "final+mean+max"
    assert config["logit_adjustment"] == 0.5 and len(config["class_prior"]) == 2
    loaded = load_classifier(tmp_path / "bi")
    assert np.array_equal(loaded.predict_proba(["anna", "zed"]), classifier.predict_proba(["anna", "zed"]))
    assert loaded.model.head.weight.shape == (2, 3 * 2 * 6)

    one_way = train_classifier(texts, labels, hidden_size=6, embedding_size=4, bidirectional=False,
                               options=TrainingOptions(epochs=1, device="cpu"))
    save_classifier(one_way, tmp_path / "old")
    path = tmp_path / "old" / "config.json"
    written = json.loads(path.read_text())
    for key in ("bidirectional", "pooling", "logit_adjustment", "class_prior"):
        del written["model"][key]  # as checkpoints were written before these settings
    path.write_text(json.dumps(written))
    old = load_classifier(tmp_path / "old")
    assert old.model.config.bidirectional is False and old.model.config.pooling == "final"
    assert np.array_equal(old.predict_proba(["anna"]), one_way.predict_proba(["anna"]))
