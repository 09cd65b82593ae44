"""Beam search (``beam_search``, ``charrnn sample --beam-width``): the most likely continuation."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from charrnn.checkpoint import load_model
from charrnn.errors import CharRNNError
from charrnn.model import CharLM, CharLMConfig
from charrnn.sampling import beam_search, sample_text
from charrnn.vocabulary import Vocabulary
from conftest import run_cli as _run

#: A bigram model's P(next | previous), rows and columns in the vocabulary's order a, b, c, d.
#: After "d", "a" is the likelier character, but everything after "a" is uncertain, while "b" is
#: followed by a near-certain "c": greedy decoding takes the bait, a beam of 2 does not.
TRAP = {"a": [0.28, 0.22, 0.26, 0.24],
        "b": [0.01, 0.01, 0.97, 0.01],
        "c": [0.02, 0.02, 0.9, 0.06],
        "d": [0.55, 0.45, 0.0, 0.0]}


def _bigram_model(table: dict[str, list[float]]) -> tuple[CharLM, Vocabulary]:
    """A one-layer LSTM with hand-set weights whose next-character distribution is ``table[previous]``.

    The embedding is one-hot, the input and output gates stay open and the forget gate shut,
    so ``h`` is ``tanh(tanh(3))`` at the unit of the character just read and 0 elsewhere; the
    output layer maps that unit to the row's log-probabilities.
    """
    vocabulary = Vocabulary.from_text("".join(table))
    size = vocabulary.size
    model = CharLM(CharLMConfig(vocab_size=size, hidden_size=size, num_layers=1, embedding_size=size)).eval()
    cell = model.rnn.cells[0]
    active = math.tanh(math.tanh(3.0))
    with torch.no_grad():
        model.embedding.weight.copy_(torch.eye(size))
        cell.weight_hh.zero_()
        cell.weight_ih.zero_()
        cell.weight_ih[2 * size:3 * size] = 3.0 * torch.eye(size)  # the candidate: tanh(3) at the character
        cell.bias.copy_(torch.tensor([20.0] * size + [-20.0] * size + [0.0] * size + [20.0] * size))  # i, f, g, o
        log_table = torch.log(torch.tensor([table[character] for character in vocabulary.characters]).clamp(min=1e-9))
        model.head.weight.copy_(log_table.T / active)  # column j: log P(. | character j)
        model.head.bias.zero_()
    return model, vocabulary


def _log_probability(table, vocabulary, previous: str, text: str) -> float:
    total = 0.0
    for character in text:
        total += math.log(max(table[previous][vocabulary.index[character]], 1e-9))
        previous = character
    return total


@pytest.fixture(scope="module")
def trap():
    return _bigram_model(TRAP)


def test_the_hand_set_model_is_the_bigram_table(trap):
    model, vocabulary = trap
    ids = torch.as_tensor(vocabulary.encode("dabcd")).view(1, -1)
    probabilities = torch.softmax(model(ids)[0][0], dim=-1)  # (T, V)
    for position, character in enumerate("dabcd"):
        expected = torch.tensor(TRAP[character])
        torch.testing.assert_close(probabilities[position], expected, atol=1e-6, rtol=0)


def test_greedy_takes_the_bait_and_the_beam_finds_the_best_text(trap):
    model, vocabulary = trap
    length = 4
    greedy = sample_text(model, vocabulary, prime="d", length=length, greedy=True)
    assert greedy.startswith("a")
    every_text = ("".join(letters) for letters in itertools.product(vocabulary.characters, repeat=length))
    best = max(every_text, key=lambda text: _log_probability(TRAP, vocabulary, "d", text))
    assert best == "bccc"
    (text, score), *_ = beam_search(model, vocabulary, prime="d", length=length, beam_width=2)
    assert text == best
    assert score == pytest.approx(_log_probability(TRAP, vocabulary, "d", best), abs=1e-5)
    assert score > _log_probability(TRAP, vocabulary, "d", greedy) + 1.0
    # Width 1 is greedy decoding, trap and all.
    assert beam_search(model, vocabulary, prime="d", length=length, beam_width=1)[0][0] == greedy


def test_a_beam_as_wide_as_every_text_ranks_them_all_exactly(trap):
    model, vocabulary = trap
    beams = beam_search(model, vocabulary, prime="d", length=2, beam_width=16)
    exact = sorted(((_log_probability(TRAP, vocabulary, "d", "".join(pair)), "".join(pair))
                    for pair in itertools.product(vocabulary.characters, repeat=2)), reverse=True)
    assert len(beams) == 16 and len({text for text, _ in beams}) == 16
    for (text, score), (expected_score, _) in zip(beams, exact):
        assert score == pytest.approx(expected_score, abs=1e-4)
        assert score == pytest.approx(_log_probability(TRAP, vocabulary, "d", text), abs=1e-4)
    # Wider than the texts that exist: only the 16 real ones come back.
    assert len(beam_search(model, vocabulary, prime="d", length=2, beam_width=40)) == 16


def test_width_1_equals_greedy_on_a_trained_model(run_dir):
    loaded = load_model(run_dir)
    for prime in ("line 3: the", ""):
        greedy = sample_text(loaded.model, loaded.vocabulary, prime=prime, length=60, greedy=True)
        assert beam_search(loaded.model, loaded.vocabulary, prime=prime, length=60, beam_width=1)[0][0] == greedy


def test_the_beam_never_does_worse_than_greedy_and_ranks_best_first(run_dir):
    loaded = load_model(run_dir)
    greedy_score = beam_search(loaded.model, loaded.vocabulary, prime="line", length=40, beam_width=1)[0][1]
    beams = beam_search(loaded.model, loaded.vocabulary, prime="line", length=40, beam_width=6)
    scores = [score for _, score in beams]
    assert scores == sorted(scores, reverse=True) and len({text for text, _ in beams}) == 6
    assert scores[0] >= greedy_score - 1e-4
    assert beam_search(loaded.model, loaded.vocabulary, prime="line", length=0) == [("", 0.0)]


def _eval_total(capsys, run_dir, path, text: str) -> float:
    """The summed cross-entropy (nats) ``charrnn eval`` reports for ``text``, read as one stream."""
    path.write_text(text, encoding="utf-8")
    code, out, _ = _run(capsys, "eval", run_dir, path, "--json", "--batch-size", "1", "--sequence-length", "512")
    assert code == 0
    result = json.loads(out)
    assert result["num_characters"] == len(text) - 1  # every character but the first is predicted
    return result["loss"] * result["num_characters"]


def test_the_reported_log_probability_matches_charrnn_eval(run_dir, tmp_path, capsys):
    prime = "line 4: the"
    code, out, _ = _run(capsys, "sample", run_dir, "--prime", prime, "--length", "50", "--beam-width", "4", "--json")
    assert code == 0
    best = json.loads(out.splitlines()[0])
    # eval predicts each character from those before it: the continuation's share is the
    # whole text's total less the prime's own (whose first character is not predicted).
    whole = _eval_total(capsys, run_dir, tmp_path / "whole.txt", prime + best["text"])
    prime_only = _eval_total(capsys, run_dir, tmp_path / "prime.txt", prime)
    assert best["log_probability"] == pytest.approx(-(whole - prime_only), abs=2e-3)
    # Without a prime the model starts after a line break, as eval of "\n" + text does.
    code, out, _ = _run(capsys, "sample", run_dir, "--length", "40", "--beam-width", "3", "--json")
    best = json.loads(out.splitlines()[0])
    assert best["log_probability"] == pytest.approx(-_eval_total(capsys, run_dir, tmp_path / "nl.txt",
                                                                 "\n" + best["text"]), abs=2e-3)


def test_the_cli_prints_the_best_texts_and_width_1_is_greedy(run_dir, capsys):
    argv = ["sample", run_dir, "--prime", "line", "--length", "30"]
    code, greedy, _ = _run(capsys, *argv, "--greedy")
    code, beam, err = _run(capsys, *argv, "--beam-width", "1")
    assert code == 0 and beam == greedy
    assert err.splitlines()[-1].startswith("charrnn: note: beam search (width 1): log-probability -")
    code, out, _ = _run(capsys, *argv, "--beam-width", "4", "--num-samples", "2")
    first, second = out.split("\n--- sample 2 ---\n")
    assert code == 0 and first.startswith("line") and len(first) == 34 and second == second[:34] + "\n"
    expected = beam_search(load_model(run_dir).model, load_model(run_dir).vocabulary, prime="line", length=30,
                           beam_width=4)
    assert [first[4:], second[4:-1]] == [text for text, _ in expected[:2]]
    code, out, _ = _run(capsys, *argv, "--beam-width", "2", "--num-samples", "2", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["rank"] for row in rows] == [1, 2] and rows[0]["log_probability"] >= rows[1]["log_probability"]
    assert {row["beam_width"] for row in rows} == {2} and all(row["characters"] == 30 for row in rows)


def test_the_beam_runs_in_int8_and_bfloat16(run_dir):
    loaded = load_model(run_dir)
    exact = beam_search(loaded.model, loaded.vocabulary, prime="line 2", length=30, beam_width=3)
    for dtype in (torch.bfloat16, torch.int8):
        rounded = beam_search(loaded.model, loaded.vocabulary, prime="line 2", length=30, beam_width=3, dtype=dtype)
        assert len(rounded) == 3 and rounded[0][1] == pytest.approx(exact[0][1], abs=0.5)


@pytest.mark.parametrize("options, message", [
    ({"beam_width": 0}, "--beam-width must be an integer in [1, 4096], got 0"),
    ({"beam_width": 2.5}, "--beam-width must be an integer in [1, 4096], got 2.5"),
    ({"beam_width": 5000}, "--beam-width must be an integer in [1, 4096], got 5000"),
    ({"length": -1}, "--length must be an integer >= 0, got -1"),
])
def test_bad_library_settings_are_refused(trap, options, message):
    model, vocabulary = trap
    with pytest.raises(CharRNNError) as error:
        beam_search(model, vocabulary, prime="d", **options)
    assert str(error.value) == message


@pytest.mark.parametrize("flags, message", [
    (["--beam-width", "0"], "sample: --beam-width must be a positive integer, got 0"),
    (["--beam-width", "-2"], "sample: --beam-width must be a positive integer, got -2"),
    (["--beam-width", "wide"], "sample: argument --beam-width: invalid int value: 'wide'"),
    (["--beam-width", "5000"], "--beam-width must be an integer in [1, 4096], got 5000"),
    (["--beam-width", "3", "--temperature", "0.5", "0.8"],
     "--beam-width finds the most likely text and draws nothing: --temperature does not apply to it"),
    (["--beam-width", "3", "--temperature", "1"],
     "--beam-width finds the most likely text and draws nothing: --temperature does not apply to it"),
    (["--beam-width", "3", "--top-k", "2"],
     "--beam-width finds the most likely text and draws nothing: --top-k does not apply to it"),
    (["--beam-width", "3", "--top-p", "0.9"],
     "--beam-width finds the most likely text and draws nothing: --top-p does not apply to it"),
    (["--beam-width", "3", "--greedy"],
     "--beam-width finds the most likely text and draws nothing: --greedy does not apply to it"),
    (["--beam-width", "3", "--stop", "."],
     "--beam-width finds the most likely text and draws nothing: --stop does not apply to it"),
    (["--beam-width", "3", "--stop-at-newline"],
     "--beam-width finds the most likely text and draws nothing: --stop-at-newline does not apply to it"),
    (["--beam-width", "3", "--seed", "1"],
     "--beam-width finds the most likely text and draws nothing: --seed does not apply to it"),
    (["--beam-width", "3", "--batch-size", "8"],
     "--beam-width finds the most likely text and draws nothing: --batch-size does not apply to it"),
    (["--beam-width", "2", "--num-samples", "3"],
     "--num-samples must be at most --beam-width (2): a beam search keeps that many texts, got 3"),
])
def test_bad_widths_and_combinations_are_refused_in_one_line(run_dir, capsys, flags, message):
    code, out, err = _run(capsys, "sample", run_dir, *flags)
    assert code == 2 and out == ""
    assert err == f"charrnn: error: {message}\n"


@pytest.mark.parametrize("cell", ["gru", "gru-reset-after", "rnn"])
def test_other_cells_search_too(cell):
    torch.manual_seed(3)
    vocabulary = Vocabulary.from_text("abcde\n")
    model = CharLM(CharLMConfig(vocab_size=vocabulary.size, cell=cell, hidden_size=12, embedding_size=4)).eval()
    greedy = sample_text(model, vocabulary, prime="ab", length=20, greedy=True)
    assert beam_search(model, vocabulary, prime="ab", length=20, beam_width=1)[0][0] == greedy
    beams = beam_search(model, vocabulary, prime="ab", length=20, beam_width=5)
    assert len({text for text, _ in beams}) == 5
    # Each beam's score is its text's log-probability, read back through the model.
    ids = torch.as_tensor(vocabulary.encode("ab" + beams[-1][0])).view(1, -1)
    log_probabilities = torch.log_softmax(model(ids)[0][0, 1:-1], dim=-1)  # predictions after the prime
    expected = log_probabilities.gather(1, ids[0, 2:].view(-1, 1)).sum().item()
    assert beams[-1][1] == pytest.approx(expected, abs=1e-4)
