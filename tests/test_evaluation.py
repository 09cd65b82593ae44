"""The evaluation loop against direct full-sequence computations on tiny models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from charrnn.errors import CharRNNError
from charrnn.evaluation import EvaluationResult, evaluate
from charrnn.model import CharLM, CharLMConfig


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread; with the 2 cores shared, two OpenMP threads
    contending with other processes can make each fused call take a quarter second."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(cell="lstm", dropout=0.0, seed=0) -> CharLM:
    torch.manual_seed(seed)
    model = CharLM(CharLMConfig(vocab_size=7, cell=cell, hidden_size=8, num_layers=2, embedding_size=5,
                                dropout=dropout))
    # Larger weights than the initial ones, so that context matters and a dropped state shows.
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(3.0)
    return model


def random_ids(length: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 7, size=length).astype(np.uint8)


def direct_loss_sum(model: CharLM, ids: np.ndarray) -> float:
    """Summed cross-entropy of one forward pass over the whole of ``ids`` from the zero state."""
    with torch.no_grad():
        tensor = torch.from_numpy(ids.astype(np.int64))[None]  # (1, n)
        logits, _ = model(tensor[:, :-1])  # (1, n - 1, V)
        return F.cross_entropy(logits[0], tensor[0, 1:], reduction="sum").item()


@pytest.mark.parametrize("cell", ["lstm", "gru"])  # the fused path and the step loop
def test_one_stream_equals_one_forward_pass_over_the_text(cell):
    model = tiny_model(cell).eval()
    ids = random_ids(101)
    result = evaluate(model, ids, batch_size=1, sequence_length=7)  # 100 = 14 * 7 + 2: a short last chunk
    assert result.num_characters == 100
    assert result.loss == pytest.approx(direct_loss_sum(model, ids) / 100, abs=1e-5)
    assert result.bits_per_character == pytest.approx(result.loss / math.log(2), rel=1e-12)
    # Carrying the state matters: restarting from zeros every chunk gives another number.
    restarted = sum(direct_loss_sum(model, ids[start:start + 8]) for start in range(0, 100, 7)) / 100
    assert abs(restarted - result.loss) > 1e-3


def test_streams_each_carry_their_state_and_leave_out_the_remainder():
    model = tiny_model().eval()
    ids = random_ids(101, seed=3)
    # 100 predictions, 3 streams of 33 (100 // 7 = 14 >= 3, so all 3 are used): 1 left out.
    result = evaluate(model, ids, batch_size=3, sequence_length=7)
    assert result.num_characters == 99
    expected = sum(direct_loss_sum(model, ids[start:start + 34]) for start in (0, 33, 66)) / 99
    assert result.loss == pytest.approx(expected, abs=1e-5)


def test_short_texts_use_fewer_streams_of_at_least_sequence_length():
    model = tiny_model().eval()
    ids = random_ids(20, seed=4)
    # 19 predictions, sequence_length 7: 19 // 7 = 2 streams of 9, 1 left out.
    result = evaluate(model, ids, batch_size=8, sequence_length=7)
    assert result.num_characters == 18
    expected = (direct_loss_sum(model, ids[0:10]) + direct_loss_sum(model, ids[9:19])) / 18
    assert result.loss == pytest.approx(expected, abs=1e-5)
    tiny = evaluate(model, ids[:2], batch_size=8, sequence_length=7)  # one prediction
    assert tiny.num_characters == 1
    assert tiny.loss == pytest.approx(direct_loss_sum(model, ids[:2]), abs=1e-5)


def test_max_characters_evaluates_the_first_characters_only():
    model = tiny_model().eval()
    ids = random_ids(300, seed=5)
    capped = evaluate(model, ids, batch_size=2, sequence_length=16, max_characters=64)
    assert capped == evaluate(model, ids[:65], batch_size=2, sequence_length=16)
    assert capped.num_characters == 64
    assert evaluate(model, ids[:10], max_characters=1000).num_characters == 9


def test_runs_in_eval_mode_and_restores_the_mode():
    model = tiny_model(dropout=0.5)
    ids = random_ids(80, seed=6)
    expected = evaluate(model.eval(), ids, batch_size=2, sequence_length=9)
    assert not model.training
    model.train()
    again = evaluate(model, ids, batch_size=2, sequence_length=9)
    assert model.training  # restored
    assert again == expected  # dropout was off inside: the same numbers
    assert isinstance(again, EvaluationResult) and not any(p.grad is not None for p in model.parameters())


def test_errors():
    model = tiny_model()
    with pytest.raises(CharRNNError, match="cannot evaluate a text of 1 character"):
        evaluate(model, random_ids(1))
    with pytest.raises(CharRNNError, match="sequence-length must be a positive integer, got 0"):
        evaluate(model, random_ids(10), sequence_length=0)
    with pytest.raises(CharRNNError, match="max-characters must be a positive integer"):
        evaluate(model, random_ids(10), max_characters=0)
