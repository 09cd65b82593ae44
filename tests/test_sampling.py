"""The sampler: state carried one character at a time, greedy/top-k/top-p/temperature, checks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from charrnn.errors import CharRNNError
from charrnn.model import CharLM, CharLMConfig
from charrnn.sampling import (
    CharacterStepper,
    filter_logits,
    make_generator,
    sample,
    sample_streams,
    sample_text,
)
from charrnn.unroll import flatten_state
from charrnn.vocabulary import UnknownCharacterError, Vocabulary

MEMORISED = "the cat sat on a mat; a bat ate the hat.\n"


def _model(vocab_size: int, cell: str = "lstm", hidden_size: int = 16, num_layers: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    return CharLM(CharLMConfig(vocab_size=vocab_size, cell=cell, hidden_size=hidden_size,
                               embedding_size=6, num_layers=num_layers)).eval()


@pytest.fixture(scope="module")
def memorised():
    """A 1x32 LSTM trained until it has learnt MEMORISED by heart (loss near 0)."""
    vocabulary = Vocabulary.from_text(MEMORISED)
    ids = torch.as_tensor(vocabulary.encode(MEMORISED * 3))
    x, y = ids[:-1].view(1, -1), ids[1:].view(1, -1)  # (1, T)
    model = _model(vocabulary.size, hidden_size=32, num_layers=1)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: threads only add waiting on a shared machine
    try:
        for _ in range(150):
            logits, _ = model(x)
            loss = F.cross_entropy(logits.view(-1, vocabulary.size), y.view(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    assert loss.item() < 0.02
    return model.eval(), vocabulary


@pytest.fixture(scope="module")
def random_model():
    vocabulary = Vocabulary.from_text("abcdefghij \n")
    return _model(vocabulary.size, hidden_size=24), vocabulary


# -- the state is carried correctly ------------------------------------------------------------
@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru-reset-after", "gru"])
def test_stepping_equals_a_full_forward(cell):
    model = _model(9, cell=cell)
    ids = torch.randint(0, 9, (2, 40), generator=torch.Generator().manual_seed(1))  # (B, T)
    expected, expected_state = model(ids)  # (B, T, V)
    stepper = CharacterStepper(model, batch_size=2)
    logits = torch.stack([stepper.step(ids[:, t]) for t in range(ids.shape[1])], dim=1)  # (B, T, V)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(flatten_state(stepper.state), flatten_state(expected_state), atol=1e-5, rtol=1e-5)


def test_stepping_keeps_the_lstm_forget_bias():
    torch.manual_seed(0)
    model = CharLM(CharLMConfig(vocab_size=9, hidden_size=16, embedding_size=6, forget_bias=1.0)).eval()
    ids = torch.randint(0, 9, (1, 20), generator=torch.Generator().manual_seed(4))
    expected, _ = model(ids)
    stepper = CharacterStepper(model)
    logits = torch.stack([stepper.step(ids[:, t]) for t in range(20)], dim=1)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


def test_feeding_a_prime_in_chunks_then_stepping_equals_a_full_forward():
    model = _model(9)
    ids = torch.randint(0, 9, (1, 50), generator=torch.Generator().manual_seed(2))
    expected, _ = model(ids)
    stepper = CharacterStepper(model)
    prime_logits = stepper.feed(ids[:, :30], chunk=7)  # chunks of 7 carry the state across calls
    torch.testing.assert_close(prime_logits, expected[:, 29], atol=1e-5, rtol=1e-5)
    rest = torch.stack([stepper.step(ids[:, t]) for t in range(30, 50)], dim=1)
    torch.testing.assert_close(rest, expected[:, 30:], atol=1e-5, rtol=1e-5)


def test_stepping_leaves_the_model_as_it_was(random_model):
    model, vocabulary = random_model
    model.train()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    sample_text(model, vocabulary, prime="abc", length=20, generator=make_generator(0))
    assert model.training
    model.eval()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name])


# -- what is drawn ------------------------------------------------------------------------------
def test_greedy_reproduces_a_memorised_text(memorised):
    model, vocabulary = memorised
    text = sample_text(model, vocabulary, prime="the c", length=2 * len(MEMORISED) - 5, greedy=True)
    assert text == (MEMORISED * 2)[5:]


def test_low_temperature_and_top_k_1_equal_greedy(random_model):
    model, vocabulary = random_model
    greedy = sample_text(model, vocabulary, prime="abc", length=60, greedy=True)
    assert sample_text(model, vocabulary, prime="abc", length=60, top_k=1, generator=make_generator(5)) == greedy
    assert sample_text(model, vocabulary, prime="abc", length=60, temperature=1e-4,
                       generator=make_generator(6)) == greedy


def test_a_seed_reproduces_a_sample_and_another_seed_changes_it(random_model):
    model, vocabulary = random_model
    first = sample_text(model, vocabulary, prime="ab", length=200, generator=make_generator(7))
    again = sample_text(model, vocabulary, prime="ab", length=200, generator=make_generator(7))
    other = sample_text(model, vocabulary, prime="ab", length=200, generator=make_generator(8))
    assert len(first) == 200 and set(first) <= set(vocabulary.characters)
    assert first == again
    assert first != other


def test_draws_follow_the_model_distribution():
    """Over many first characters, the frequencies match softmax(logits / T)."""
    vocabulary = Vocabulary.from_text("abcd")
    model = _model(vocabulary.size, seed=3)
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor([2.0, 1.0, 0.0, -1.0]))
        model.head.weight.zero_()  # logits = bias, whatever the state
    # With a zero head weight the logits are the bias after every character: independent draws.
    draws = sample_text(model, vocabulary, prime="a", length=4000, temperature=2.0, generator=make_generator(0))
    frequencies = np.array([draws.count(char) for char in "abcd"]) / len(draws)
    expected = torch.softmax(torch.tensor([2.0, 1.0, 0.0, -1.0]) / 2.0, dim=0).numpy()
    np.testing.assert_allclose(frequencies, expected, atol=0.03)


def test_filter_logits_keeps_top_k_and_the_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = lambda filtered: torch.isfinite(filtered)[0].tolist()
    assert kept(filter_logits(logits, top_k=2)) == [True, True, False, False]
    assert kept(filter_logits(logits, top_p=0.5)) == [True, False, False, False]
    assert kept(filter_logits(logits, top_p=0.6)) == [True, True, False, False]
    assert kept(filter_logits(logits, top_p=0.96)) == [True, True, True, True]
    assert kept(filter_logits(logits, top_p=1e-9)) == [True, False, False, False]  # never empty
    shuffled = logits[:, [2, 0, 3, 1]]  # the nucleus is found whatever the order
    assert kept(filter_logits(shuffled, top_p=0.6)) == [False, True, False, True]
    torch.testing.assert_close(filter_logits(logits, temperature=2.0), logits / 2.0)


def test_top_p_draws_only_inside_the_nucleus():
    vocabulary = Vocabulary.from_text("abcd")
    model = _model(vocabulary.size, seed=4)
    with torch.no_grad():
        model.head.bias.copy_(torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05])))
        model.head.weight.zero_()
    text = sample_text(model, vocabulary, prime="a", length=400, top_p=0.6, generator=make_generator(1))
    assert set(text) == {"a", "b"}


# -- the prime ------------------------------------------------------------------------------------
def test_unknown_prime_characters_are_named(random_model):
    model, vocabulary = random_model
    with pytest.raises(UnknownCharacterError, match=r"prime: 2 character\(s\).*'X' at offset 1.*'é' at offset 3"):
        sample(model, vocabulary, prime="aXbé")


def test_skip_unknown_drops_them(random_model):
    model, vocabulary = random_model
    skipped = sample_text(model, vocabulary, prime="aXbé", length=50, skip_unknown=True,
                          generator=make_generator(3))
    clean = sample_text(model, vocabulary, prime="ab", length=50, generator=make_generator(3))
    assert skipped == clean


def test_an_empty_prime_starts_after_a_line_break(random_model):
    model, vocabulary = random_model
    assert (sample_text(model, vocabulary, length=40, greedy=True)
            == sample_text(model, vocabulary, prime="\n", length=40, greedy=True))
    no_newline = Vocabulary.from_text("xyz")
    text = sample_text(_model(3), no_newline, length=30, generator=make_generator(0))
    assert len(text) == 30 and set(text) <= {"x", "y", "z"}


# -- streaming and checks -------------------------------------------------------------------------
def test_characters_stream_one_at_a_time(random_model):
    """A billion characters asked for: the first few come at once (nothing is made ahead)."""
    model, vocabulary = random_model
    characters = sample(model, vocabulary, prime="a", length=10**9, generator=make_generator(0))
    assert len("".join(itertools.islice(characters, 5))) == 5
    assert sample_text(model, vocabulary, length=0) == ""


@pytest.mark.parametrize("options, message", [
    ({"temperature": 0}, "temperature must be a number > 0, got 0"),
    ({"temperature": -1.0}, "temperature must be a number > 0, got -1.0"),
    ({"temperature": math.nan}, "temperature must be a number > 0, got nan"),
    ({"temperature": math.inf}, "temperature must be a number > 0, got inf"),
    ({"top_k": 0}, "--top-k must be a positive integer, got 0"),
    ({"top_k": 2.5}, "--top-k must be a positive integer, got 2.5"),
    ({"top_p": 0.0}, r"top-p must be a number in \(0, 1\], got 0.0"),
    ({"top_p": 1.5}, r"top-p must be a number in \(0, 1\], got 1.5"),
    ({"length": -1}, "length must be an integer >= 0, got -1"),
])
def test_bad_settings_are_refused_at_the_call(random_model, options, message):
    model, vocabulary = random_model
    with pytest.raises(CharRNNError, match=message):
        sample(model, vocabulary, **options)  # no iteration needed: checked up front


def test_a_vocabulary_of_another_size_is_refused(random_model):
    model, _ = random_model
    with pytest.raises(CharRNNError, match="vocabulary has 3 characters but the model reads 12"):
        sample(model, Vocabulary.from_text("abc"))


# -- several streams at once, and bfloat16 ------------------------------------------------------
def test_one_stream_of_sample_streams_is_sample(random_model):
    model, vocabulary = random_model
    options = dict(prime="abc", length=60, top_p=0.9)
    alone = sample_text(model, vocabulary, generator=make_generator(5), **options)
    columns = list(sample_streams(model, vocabulary, 1, generator=make_generator(5), **options))
    assert "".join(column[0] for column in columns) == alone


def test_streams_continue_the_shared_prime_as_one_stream_would(random_model):
    model, vocabulary = random_model
    prime = torch.as_tensor(vocabulary.encode("abc ja"))
    shared = CharacterStepper(model, batch_size=3)
    logits = shared.feed(prime.view(1, -1))
    alone = CharacterStepper(model)
    expected = alone.feed(prime.view(1, -1))
    torch.testing.assert_close(logits, expected)
    for leaf, expected_leaf in zip(flatten_state(shared.state), flatten_state(alone.state)):
        assert leaf.shape[0] == 3
        torch.testing.assert_close(leaf, expected_leaf.expand_as(leaf))
    # Each stream then goes its own way, exactly as it would alone.
    ids = torch.tensor([1, 4, 7])
    stepped = shared.step(ids)
    for stream in range(3):
        single = CharacterStepper(model)
        single.feed(prime.view(1, -1))
        torch.testing.assert_close(stepped[stream:stream + 1], single.step(ids[stream:stream + 1]))


def test_every_stream_draws_for_itself(random_model):
    model, vocabulary = random_model
    columns = list(sample_streams(model, vocabulary, 4, prime="a", length=80, generator=make_generator(2)))
    texts = ["".join(column[stream] for column in columns) for stream in range(4)]
    assert len(set(texts)) == 4 and all(len(text) == 80 for text in texts)


def test_greedy_streams_all_reproduce_a_memorised_text(memorised):
    model, vocabulary = memorised
    for dtype in (None, torch.bfloat16):
        columns = list(sample_streams(model, vocabulary, 3, prime="the cat", length=60, greedy=True, dtype=dtype))
        for stream in range(3):
            assert "".join(column[stream] for column in columns) == (MEMORISED * 2)[7:67]


def test_bfloat16_stays_close_to_float32_and_leaves_the_model_alone(memorised):
    model, vocabulary = memorised
    ids = torch.as_tensor(vocabulary.encode(MEMORISED))
    exact, rounded = CharacterStepper(model), CharacterStepper(model, dtype=torch.bfloat16)
    losses = {}
    for name, stepper in (("float32", exact), ("bfloat16", rounded)):
        total = 0.0
        for current, following in zip(ids[:-1], ids[1:]):
            logits = stepper.step(current.view(1)).float()
            total += F.cross_entropy(logits, following.view(1)).item()
        losses[name] = total / (len(ids) - 1)
    assert rounded.state[0].c.dtype == torch.float32  # the cell state stays float32; the products round
    assert losses["bfloat16"] != losses["float32"]
    assert model.head.weight.dtype == torch.float32
    assert abs(losses["bfloat16"] - losses["float32"]) < 0.02, losses


def test_a_bad_number_of_streams_is_refused(random_model):
    model, vocabulary = random_model
    with pytest.raises(CharRNNError, match="--num-samples must be a positive integer, got 0"):
        sample_streams(model, vocabulary, 0)
