"""charrnn.inspection: recorded units against the unroller, gates against the cells' equations,
surprise against the evaluation loop, saturation and features by hand, and the unit finder on
models trained to need (or not need) to know whether they are inside quotes."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from charrnn.corpus import prepare_corpus
from charrnn.errors import CharRNNError, SettingError
from charrnn.evaluation import evaluate
from charrnn.files import CheckpointError, save_tensors
from charrnn.inspection import (
    FEATURES,
    MAX_CHARACTERS,
    Recording,
    best_units,
    record,
    regex_feature,
    saturation,
    score_units,
)
from charrnn.model import CharLM, CharLMConfig
from charrnn.training import TrainConfig, language_model_trainer
from charrnn.unroll import dynamic_rnn
from charrnn.vocabulary import UnknownCharacterError, Vocabulary

VOCABULARY = Vocabulary.from_text('abcde "()\n')
CELLS = ["lstm", "gru", "gru-reset-after", "rnn"]


def tiny_model(cell: str, dropout: float = 0.0, seed: int = 0) -> CharLM:
    torch.manual_seed(seed)
    model = CharLM(CharLMConfig(vocab_size=VOCABULARY.size, cell=cell, hidden_size=6, num_layers=2,
                                embedding_size=5, dropout=dropout, forget_bias=0.7))
    with torch.no_grad():  # larger weights than the initial ones: gates away from 0.5, context that matters
        for parameter in model.parameters():
            parameter.mul_(2.0)
    return model


def random_text(length: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    return "".join(rng.choice(VOCABULARY.characters, size=length))


def embedded(model: CharLM, recording: Recording) -> torch.Tensor:
    with torch.no_grad():
        return model.embedding(torch.from_numpy(recording.ids))[None]  # (1, T, E)


# -- the recording against the model's own paths ---------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_recorded_outputs_and_memory_equal_the_unrollers(cell):
    model = tiny_model(cell).eval()
    recording = record(model, VOCABULARY, random_text(40))
    steps = len(recording)
    inputs = embedded(model, recording)
    with torch.no_grad():
        top, final_states = dynamic_rnn(model.rnn, inputs)  # the model's own path (fused where it can)
        np.testing.assert_allclose(recording.layers[-1]["h"], top[0].numpy(), atol=1e-5)
        for layer, layer_cell in enumerate(model.rnn.cells):
            outputs, _ = dynamic_rnn(layer_cell, inputs)  # (1, T, N)
            assert recording.layers[layer]["h"].shape == (steps, 6)
            assert recording.layers[layer]["h"].dtype == np.float32
            np.testing.assert_allclose(recording.layers[layer]["h"], outputs[0].numpy(), atol=1e-5)
            if cell == "lstm":
                # Every prefix at once: row t stops after t + 1 steps, so its final c is c_t.
                _, states = dynamic_rnn(layer_cell, inputs.expand(steps, -1, -1),
                                        sequence_length=torch.arange(1, steps + 1))
                np.testing.assert_allclose(recording.layers[layer]["c"], states.c.numpy(), atol=1e-5)
                np.testing.assert_allclose(recording.layers[layer]["c"][-1], final_states[layer].c[0].numpy(),
                                           atol=1e-5)
            inputs = outputs
    assert recording.cell_types == [cell, cell]
    expected = {"lstm": ["h", "c", "input", "forget", "output", "candidate"],
                "gru": ["h", "reset", "update", "candidate"], "gru-reset-after": ["h", "reset", "update", "candidate"],
                "rnn": ["h"]}[cell]
    assert recording.kinds(0) == recording.kinds(1) == expected


def test_a_model_in_training_mode_is_recorded_without_dropout_and_left_in_training_mode():
    model = tiny_model("lstm", dropout=0.5)
    text = random_text(30)
    training = record(model, VOCABULARY, text)
    assert model.training
    evaluated = record(model.eval(), VOCABULARY, text)
    for layer in range(2):
        np.testing.assert_array_equal(training.layers[layer]["h"], evaluated.layers[layer]["h"])


def _previous(values: np.ndarray) -> np.ndarray:
    """Each row's predecessor, zeros before the first: the state each step started from."""
    return np.concatenate([np.zeros_like(values[:1]), values[:-1]])


def _layer_inputs(model: CharLM, recording: Recording, layer: int) -> np.ndarray:
    if layer == 0:
        return embedded(model, recording)[0].numpy()  # (T, E)
    return recording.layers[layer - 1]["h"]


def sigmoid(values):
    return 1.0 / (1.0 + np.exp(-values))


def test_lstm_gates_follow_the_cell_equations():
    model = tiny_model("lstm").eval()
    recording = record(model, VOCABULARY, random_text(40, seed=1))
    for layer, cell in enumerate(model.rnn.cells):
        values = recording.layers[layer]
        c, h = values["c"], values["h"]
        np.testing.assert_allclose(c, values["forget"] * _previous(c) + values["input"] * values["candidate"],
                                   atol=1e-5)
        np.testing.assert_allclose(h, np.tanh(c) * values["output"], atol=1e-5)
        # The gates themselves, from the weights and the recorded h_{t-1}: blocks i, f, g, o.
        weight_ih, weight_hh, bias = (tensor.detach().numpy() for tensor in (cell.weight_ih, cell.weight_hh, cell.bias))
        pre = _layer_inputs(model, recording, layer) @ weight_ih.T + bias + _previous(h) @ weight_hh.T  # (T, 4N)
        i, f, g, o = np.split(pre, 4, axis=1)
        np.testing.assert_allclose(values["input"], sigmoid(i), atol=1e-5)
        np.testing.assert_allclose(values["forget"], sigmoid(f + 0.7), atol=1e-5)  # forget_bias included
        np.testing.assert_allclose(values["candidate"], np.tanh(g), atol=1e-5)
        np.testing.assert_allclose(values["output"], sigmoid(o), atol=1e-5)
        assert not np.allclose(values["forget"], sigmoid(f), atol=1e-3)


@pytest.mark.parametrize("cell", ["gru", "gru-reset-after"])
def test_gru_gates_follow_the_cell_equations(cell):
    model = tiny_model(cell).eval()
    recording = record(model, VOCABULARY, random_text(40, seed=2))
    for layer, layer_cell in enumerate(model.rnn.cells):
        values = recording.layers[layer]
        h, reset, update, candidate = values["h"], values["reset"], values["update"], values["candidate"]
        previous = _previous(h)
        np.testing.assert_allclose(h, update * previous + (1 - update) * candidate, atol=1e-5)
        x = _layer_inputs(model, recording, layer)
        if cell == "gru":  # TensorFlow 1's: [x, h] kernels; the reset gate before the product
            gate_kernel, gate_bias, candidate_kernel, candidate_bias = (
                tensor.numpy() for tensor in layer_cell.tf_weights())
            r, u = np.split(sigmoid(np.concatenate([x, previous], 1) @ gate_kernel + gate_bias), 2, axis=1)
            expected = np.tanh(np.concatenate([x, r * previous], 1) @ candidate_kernel + candidate_bias)
        else:  # cuDNN's: the reset gate after the state's product
            weights = [tensor.detach().numpy() for tensor in (layer_cell.weight_ih, layer_cell.bias,
                                                              layer_cell.weight_hh, layer_cell.recurrent_bias)]
            a_r, a_u, a_c = np.split(x @ weights[0].T + weights[1], 3, axis=1)
            g_r, g_u, g_c = np.split(previous @ weights[2].T + weights[3], 3, axis=1)
            r, u = sigmoid(a_r + g_r), sigmoid(a_u + g_u)
            expected = np.tanh(a_c + r * g_c)
        np.testing.assert_allclose(reset, r, atol=1e-5)
        np.testing.assert_allclose(update, u, atol=1e-5)
        np.testing.assert_allclose(candidate, expected, atol=1e-5)
    assert {score.kind for score in score_units(recording)} == {"h"}  # the default kinds: a GRU has no c


@pytest.mark.parametrize("cell", ["lstm", "gru"])  # the fused path and the step loop in evaluate
def test_surprise_averages_to_the_evaluation_loss_and_the_guesses_are_the_models(cell):
    model = tiny_model(cell).eval()
    recording = record(model, VOCABULARY, random_text(60, seed=3))
    loss = evaluate(model, recording.ids, batch_size=1, sequence_length=len(recording)).loss
    assert math.isnan(recording.surprise[-1])  # the last character has no next one
    assert np.nanmean(recording.surprise.astype(np.float64)) == pytest.approx(loss, abs=1e-5)
    np.testing.assert_allclose(recording.surprise_bits, recording.surprise / math.log(2), rtol=1e-6)
    with torch.no_grad():
        probabilities = torch.softmax(model(torch.from_numpy(recording.ids)[None])[0][0], dim=-1).numpy()  # (T, V)
    assert recording.top_ids.shape == recording.top_probabilities.shape == (60, 5)
    np.testing.assert_allclose(np.take_along_axis(probabilities, recording.top_ids, 1), recording.top_probabilities,
                               atol=1e-5)
    np.testing.assert_array_equal(recording.top_ids[:, 0], probabilities.argmax(axis=1))
    assert (np.diff(recording.top_probabilities, axis=1) <= 0).all()
    assert (recording.top_probabilities.sum(axis=1) <= 1 + 1e-6).all()
    guesses = recording.guesses(0)
    assert [character for character, _ in guesses] == [VOCABULARY.characters[i] for i in recording.top_ids[0]]


def test_a_small_vocabulary_keeps_as_many_guesses_as_it_has_characters():
    vocabulary = Vocabulary.from_text("ab")
    torch.manual_seed(0)
    model = CharLM(CharLMConfig(vocab_size=2, hidden_size=4, num_layers=1, embedding_size=3))
    recording = record(model, vocabulary, "abba")
    assert recording.top_ids.shape == (4, 2)
    np.testing.assert_allclose(recording.top_probabilities.sum(axis=1), 1.0, atol=1e-6)


def test_a_recording_survives_a_save_and_a_load(tmp_path):
    recording = record(tiny_model("gru"), VOCABULARY, 'ab "(c)"\nde')
    recording.save(tmp_path / "recording.safetensors")
    loaded = Recording.load(tmp_path / "recording.safetensors")
    assert (loaded.text, loaded.characters, loaded.cell_types) == (recording.text, recording.characters,
                                                                    recording.cell_types)
    assert loaded.kinds(1) == recording.kinds(1)
    for layer in range(2):
        for kind in recording.kinds(layer):
            np.testing.assert_array_equal(loaded.layers[layer][kind], recording.layers[layer][kind])
    for name in ("ids", "top_ids", "top_probabilities", "surprise"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(recording, name))
    (tmp_path / "other.safetensors").write_bytes(b"not a recording")
    with pytest.raises(CheckpointError, match="other.safetensors: not a valid safetensors file"):
        Recording.load(tmp_path / "other.safetensors")
    save_tensors(tmp_path / "other.safetensors", {"x": torch.zeros(2)})  # safetensors, but no recording
    with pytest.raises(CheckpointError, match="not a charrnn recording"):
        Recording.load(tmp_path / "other.safetensors")


# -- errors -------------------------------------------------------------------------------------------
def test_an_empty_text_is_refused():
    with pytest.raises(CharRNNError, match="the text is empty"):
        record(tiny_model("rnn"), VOCABULARY, "")
    with pytest.raises(CharRNNError, match="empty once the characters outside the vocabulary are dropped"):
        record(tiny_model("rnn"), VOCABULARY, "xyz", skip_unknown=True)


def test_one_character_is_enough():
    recording = record(tiny_model("lstm"), VOCABULARY, "a")
    assert recording.layers[0]["c"].shape == (1, 6) and recording.top_ids.shape == (1, 5)
    assert np.isnan(recording.surprise).all()  # nothing came after it


def test_unknown_characters_are_named_or_dropped():
    model = tiny_model("rnn")
    with pytest.raises(UnknownCharacterError, match=r"text: 2 character\(s\) not in the vocabulary: 'x' at offset 1, "
                                                    r"'Z' at offset 3") as caught:
        record(model, VOCABULARY, "axbZa")
    assert caught.value.exit_code == 2 and len(str(caught.value).splitlines()) == 1
    recording = record(model, VOCABULARY, "axbZa", skip_unknown=True)
    assert recording.text == "aba" and recording.layers[0]["h"].shape == (3, 6)
    np.testing.assert_array_equal(recording.layers[0]["h"], record(model, VOCABULARY, "aba").layers[0]["h"])


def test_a_text_over_the_limit_is_refused_before_it_is_read():
    model = tiny_model("rnn")
    with pytest.raises(CharRNNError, match=f"the text has {MAX_CHARACTERS + 1:,} characters; record takes at most "
                                           f"{MAX_CHARACTERS:,}"):
        record(model, VOCABULARY, "\N{SNOWMAN}" * (MAX_CHARACTERS + 1))  # unknown, but the length is checked first
    with pytest.raises(CharRNNError, match="the text has 11 characters; record takes at most 10"):
        record(model, VOCABULARY, "a" * 11, max_characters=10)
    assert len(record(model, VOCABULARY, "a" * 10, max_characters=10)) == 10
    with pytest.raises(SettingError, match="--max-characters must be a positive integer, got 0"):
        record(model, VOCABULARY, "a", max_characters=0)


def test_a_vocabulary_of_another_size_is_refused():
    with pytest.raises(CharRNNError, match="the vocabulary has 2 characters but the model reads 10"):
        record(tiny_model("rnn"), Vocabulary.from_text("ab"), "ab")


# -- saturation ---------------------------------------------------------------------------------------
def made_up_recording(layers: list[dict[str, np.ndarray]], text: str | None = None) -> Recording:
    steps = len(next(iter(layers[0].values())))
    text = text if text is not None else "a" * steps
    return Recording(text=text, characters=["a"], ids=np.zeros(steps, np.int64), cell_types=["lstm"] * len(layers),
                     layers=layers, top_ids=np.zeros((steps, 1), np.int64),
                     top_probabilities=np.ones((steps, 1), np.float32), surprise=np.full(steps, np.nan, np.float32))


def test_saturation_counts_the_steps_below_low_and_above_high():
    forget = np.array([[0.05, 0.95, 0.5], [0.05, 0.91, 0.1], [0.5, 0.99, 0.9], [0.01, 0.2, 0.95]], np.float32)
    update = np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.05], [0.2, 0.3]], np.float32)
    recording = made_up_recording([{"h": forget * 0, "forget": forget}, {"h": update * 0, "update": update}])
    result = saturation(recording)
    assert sorted(result) == [(0, "forget"), (1, "update")]
    left, right = result[0, "forget"]
    np.testing.assert_allclose(left, [3 / 4, 0, 0])  # 0.1 and 0.9 themselves are not saturated
    np.testing.assert_allclose(right, [0, 3 / 4, 1 / 4])
    left, right = result[1, "update"]
    np.testing.assert_allclose(left, [1 / 4, 1 / 4])
    np.testing.assert_allclose(right, [1 / 4, 1 / 4])
    left, right = saturation(recording, low=0.25, high=0.6)[1, "update"]
    np.testing.assert_allclose(left, [2 / 4, 1 / 4])
    np.testing.assert_allclose(right, [1 / 4, 1 / 4])
    assert saturation(record(tiny_model("rnn"), VOCABULARY, "abc")) == {}  # no gates


def test_saturation_settings_are_checked():
    recording = made_up_recording([{"h": np.zeros((2, 1), np.float32)}])
    with pytest.raises(SettingError, match="low must be below high"):
        saturation(recording, low=0.9, high=0.1)
    with pytest.raises(SettingError, match=r"--high must be a number in \[0.0, 1.0\], got 1.5"):
        saturation(recording, high=1.5)


# -- features -----------------------------------------------------------------------------------------
def feature(name: str, text: str) -> list[float]:
    values = FEATURES[name](text)
    assert values.shape == (len(text),)
    return values.tolist()


def test_in_quotes_counts_the_opening_quote_inside_and_the_closing_one_outside():
    assert feature("in_quotes", 'a "bc" d"e') == [0, 0, 1, 1, 1, 0, 0, 0, 1, 1]
    assert feature("in_quotes", "") == []


def test_bracket_depth_nests_every_kind_and_never_goes_below_zero():
    assert feature("bracket_depth", "a(b[c]{d})e") == [0, 1, 1, 2, 2, 1, 2, 2, 1, 0, 0]
    assert feature("bracket_depth", ")a(") == [0, 0, 1]  # a closer with nothing open is ignored
    assert feature("bracket_depth", "(()))(") == [1, 2, 1, 0, 0, 1]


def test_line_and_word_positions():
    text = "ab c\n\nde\nf"
    assert feature("line_position", text) == [1, 2, 3, 4, 0, 0, 1, 2, 0, 1]
    assert feature("line_start", text) == [1, 0, 0, 0, 0, 1, 1, 0, 0, 1]
    assert feature("word_position", "hi, x_1 y") == [1, 2, 0, 0, 1, 2, 3, 0, 1]


def test_character_classes_and_regular_expressions():
    text = "Hi 42.\tOk?"
    assert feature("whitespace", text) == [0, 0, 1, 0, 0, 0, 1, 0, 0, 0]
    assert feature("upper_case", text) == [1, 0, 0, 0, 0, 0, 0, 1, 0, 0]
    assert feature("digit", text) == [0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
    assert feature("sentence_end", text) == [0, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    assert regex_feature(r"<[^>]*>")("a<b>c<>").tolist() == [0, 1, 1, 1, 0, 1, 1]
    assert regex_feature(r"x*")("axa").tolist() == [0, 1, 0]  # empty matches mark nothing
    with pytest.raises(SettingError, match="is not a regular expression"):
        regex_feature("(")


# -- unit scores --------------------------------------------------------------------------------------
def test_scores_are_pearson_and_sklearns_auc_and_constant_columns_are_safe():
    rng = np.random.default_rng(0)
    text = "".join(rng.choice(list('ab "('), size=80))
    quotes = FEATURES["in_quotes"](text)
    h = rng.normal(size=(80, 4)).astype(np.float32)
    h[:, 1] = np.round(quotes * 2 + rng.normal(size=80), 0)  # ties
    h[:, 2] = 0.25  # constant
    h[:, 3] = -quotes + 0.1 * rng.normal(size=80)  # tracks quotes by going low
    recording = made_up_recording([{"h": h, "forget": h}], text=text)
    features = {"in_quotes": FEATURES["in_quotes"], "depth": FEATURES["bracket_depth"],
                "never": FEATURES["digit"]}  # no digits in the text: constant, left out
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division-by-zero or NaN warnings
        scores = score_units(recording, features)
    assert len(scores) == 2 * 4  # two features that vary, one layer, kind h only (no c here), four units
    assert {score.feature for score in scores} == {"in_quotes", "depth"}
    for score in scores:
        column = h[:, score.unit].astype(np.float64)
        values = features[score.feature](text)
        expected_r = 0.0 if score.unit == 2 else np.corrcoef(column, values)[0, 1]
        assert score.correlation == pytest.approx(abs(expected_r), abs=1e-9)
        assert score.direction == int(np.sign(expected_r))
        if score.feature == "in_quotes":
            auc = roc_auc_score(values, column)
            assert score.auc == pytest.approx(max(auc, 1 - auc), abs=1e-12)
            assert score.score == score.auc
        elif set(np.unique(values)) - {0.0, 1.0}:
            assert score.auc is None and score.score == score.correlation
    best = best_units(scores, "in_quotes", top=2)
    assert [score.unit for score in best] == [3, 1] and best[0].direction == -1
    assert best_units(scores, "in_quotes", top=10)[-1].unit == 2  # constant: AUC 0.5, r 0
    assert len(score_units(recording, features, kinds=("h", "forget"))) == 2 * 8


def test_score_and_best_unit_settings_are_checked():
    recording = made_up_recording([{"h": np.eye(3, dtype=np.float32)}], text='a"b')
    with pytest.raises(SettingError, match=r"kinds must be among h, got \['c'\]"):
        score_units(recording, kinds=("c",))  # no layer has one
    with pytest.raises(SettingError, match=r"kinds must be among h, got \['h', 'cell'\]"):
        score_units(recording, kinds=("h", "cell"))  # no such kind
    with pytest.raises(CharRNNError, match=r"feature 'bad' gave shape \[2\], expected \[3\]"):
        score_units(recording, {"bad": lambda text: np.zeros(2)})
    scores = score_units(recording)
    with pytest.raises(SettingError, match="feature must be one of"):
        best_units(scores, "no_such_feature")
    with pytest.raises(SettingError, match="--top must be a positive integer, got 0"):
        best_units(scores, "in_quotes", top=0)


# -- the unit finder on trained models ----------------------------------------------------------------
def quoted_words(length: int, dependent: bool, seed: int) -> str:
    """Words of 2-5 letters between spaces; a double quote before or after a word, each with
    probability 1/4, independently of anything else. With ``dependent``, a word inside quotes
    is upper case (A-H) and one outside lower case (a-h): the first letter after a space can
    only be predicted by knowing whether the quotes are open. Without, each word's case is a
    coin toss: the same characters, the same quotes, and nothing to gain from tracking them."""
    rng = np.random.default_rng(seed)
    words, inside, size = [], False, 0
    while size < length:
        word = ""
        if rng.random() < 0.25:
            word, inside = '"', not inside
        upper = inside if dependent else rng.random() < 0.5
        word += "".join(rng.choice(list("ABCDEFGH" if upper else "abcdefgh"), size=rng.integers(2, 6)))
        if rng.random() < 0.25:
            word, inside = word + '"', not inside
        words.append(word + " ")
        size += len(word) + 1
    return "".join(words)[:length]


def trained_model(tmp_path, dependent: bool):
    (tmp_path / "corpus.txt").write_text(quoted_words(40_000, dependent, seed=0), encoding="utf-8")
    corpus = prepare_corpus([tmp_path / "corpus.txt"], tmp_path / "data")
    settings = TrainConfig(cell="lstm", hidden_size=16, num_layers=1, embedding_size=8, batch_size=16,
                           sequence_length=64, warmup_steps=0, max_steps=300, eval_every=300, log_every=300,
                           device="cpu", seed=0)
    trainer = language_model_trainer(settings, corpus)
    result = trainer.run()
    assert result.step == 300
    return trainer.model, corpus.vocabulary


@pytest.mark.parametrize("dependent", [True, False], ids=["quotes-matter", "control"])
def test_the_unit_finder_finds_a_quote_unit_only_where_quotes_matter(tmp_path, dependent):
    model, vocabulary = trained_model(tmp_path, dependent)
    text = quoted_words(4000, dependent, seed=1)  # fresh text of the same kind
    recording = record(model, vocabulary, text)
    best = best_units(score_units(recording, {"in_quotes": FEATURES["in_quotes"]}), "in_quotes", top=1)[0]
    # Measured over seeds 0-2 (300 steps, about 1 s of training each): with quotes that matter,
    # the best unit (a c unit, |r| about 0.9) reaches an AUC of 1.000 after 150 steps already;
    # in the control the best of the 32 h and c units reaches 0.51-0.54 (chance: 0.5).
    # An untrained model scores 0.73-0.83 on the quote text, from units that follow the current
    # letter's case, so 0.97 takes training, and 0.65 leaves the control a wide margin.
    if not dependent:
        assert best.auc < 0.65
        return
    assert best.auc > 0.97
    # And it is memory, not the current character: at the spaces, where the input says nothing
    # of the quotes, the same unit still tells inside from outside (measured 1.000; untrained 0.65-0.82).
    spaces = np.array([character == " " for character in text])
    values = recording.layers[best.layer][best.kind][spaces, best.unit]
    auc = roc_auc_score(FEATURES["in_quotes"](text)[spaces], values)
    assert max(auc, 1 - auc) > 0.95
