"""Vocabulary: deterministic order, round trips on any Unicode, clear errors, one-hot."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from charrnn import UnknownCharacterError, Vocabulary, one_hot


@given(st.text(min_size=1))
def test_encode_decode_round_trip_on_any_unicode(text):
    vocabulary = Vocabulary.from_text(text)
    ids = vocabulary.encode(text)
    assert vocabulary.decode(ids) == text
    assert ids.min() >= 0 and ids.max() < vocabulary.size


@given(st.text(min_size=1))
def test_order_is_sorted_and_independent_of_the_text_order(text):
    vocabulary = Vocabulary.from_text(text)
    assert vocabulary.characters == sorted(set(text))
    assert Vocabulary.from_text(text[::-1]) == vocabulary


@given(st.text(min_size=1))
def test_json_round_trip(text):
    vocabulary = Vocabulary.from_text(text)
    assert Vocabulary.from_json(vocabulary.to_json()) == vocabulary


def test_korean_and_emoji():
    text = "안녕하세요 👋🏽 세계"
    vocabulary = Vocabulary.from_text(text)
    assert vocabulary.decode(vocabulary.encode(text)) == text
    assert "👋" in vocabulary


def test_unknown_characters_are_named_with_their_offsets():
    vocabulary = Vocabulary.from_text("hello")
    with pytest.raises(UnknownCharacterError, match=r"'x' at offset 1, 'y' at offset 3"):
        vocabulary.encode("hxly")
    assert vocabulary.decode(vocabulary.encode("hxly", skip_unknown=True)) == "hl"


def test_one_hot():
    vocabulary = Vocabulary.from_text("hihello")  # e h i l o
    rows = vocabulary.one_hot("hi")
    assert rows.tolist() == [[0, 1, 0, 0, 0], [0, 0, 1, 0, 0]]
    assert one_hot(torch.tensor([[0, 2]]), 3).shape == (1, 2, 3)


def test_from_json_rejects_unsorted_lists():
    with pytest.raises(ValueError, match="sorted list"):
        Vocabulary.from_json('{"characters": ["b", "a"]}')
