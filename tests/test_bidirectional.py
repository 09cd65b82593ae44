"""``bidirectional_dynamic_rnn`` and ``reverse_sequence``: TensorFlow 1's semantics, fused or step by step."""

import pytest
import torch

import charrnn
from charrnn.cells import LSTMStateTuple, MultiRNNCell, make_cell
from charrnn.unroll import bidirectional_dynamic_rnn, dynamic_rnn, reverse_sequence

LENGTHS = [5, 2, 0, 4]


def test_reverse_sequence_reverses_within_each_length():
    x = torch.arange(12.0).view(3, 4)
    assert reverse_sequence(x, [4, 2, 0]).tolist() == [[3, 2, 1, 0], [5, 4, 6, 7], [8, 9, 10, 11]]
    assert reverse_sequence(x).tolist() == x.flip(1).tolist()
    three_d = torch.arange(24.0).view(2, 3, 4)
    assert torch.equal(reverse_sequence(three_d, [2, 3])[0, :2], three_d[0, :2].flip(0))
    assert torch.equal(reverse_sequence(reverse_sequence(three_d, [2, 3]), [2, 3]), three_d)
    with pytest.raises(ValueError, match=r"sequence_length values must lie in \[0, 4\]"):
        reverse_sequence(x, [5, 1, 1])


def _cells(kind, layers, seed):
    torch.manual_seed(seed)
    cells = [make_cell(kind, 6, 3 if layer == 0 else 6) for layer in range(layers)]
    return cells[0] if layers == 1 else MultiRNNCell(cells)


@pytest.mark.parametrize("kind", ["lstm", "rnn", "gru-reset-after"])
@pytest.mark.parametrize("layers", [1, 2])
def test_fused_equals_step_loop(kind, layers):
    cell_fw, cell_bw = _cells(kind, layers, 0), _cells(kind, layers, 1)
    inputs = torch.randn(4, 5, 3)
    fused = bidirectional_dynamic_rnn(cell_fw, cell_bw, inputs, sequence_length=LENGTHS, fused=True)
    steps = bidirectional_dynamic_rnn(cell_fw, cell_bw, inputs, sequence_length=LENGTHS, fused=False)
    torch.testing.assert_close(fused, steps, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_backward_pass_is_the_manual_reversal_within_each_length(kind):
    cell_fw, cell_bw = _cells(kind, 1, 2), _cells(kind, 1, 3)
    inputs = torch.randn(4, 5, 3)
    (out_fw, out_bw), (state_fw, state_bw) = bidirectional_dynamic_rnn(cell_fw, cell_bw, inputs,
                                                                       sequence_length=LENGTHS)
    expected_fw, expected_state_fw = dynamic_rnn(cell_fw, inputs, sequence_length=LENGTHS)
    torch.testing.assert_close(out_fw, expected_fw)
    torch.testing.assert_close(state_fw, expected_state_fw)
    for row, length in enumerate(LENGTHS):
        # Each sequence alone, cut to its length and read back to front.
        alone = inputs[row: row + 1, :length].flip(1)
        outputs, state = dynamic_rnn(cell_bw, alone)
        torch.testing.assert_close(out_bw[row, :length], outputs[0].flip(0), rtol=1e-5, atol=1e-6)
        assert bool((out_bw[row, length:] == 0).all()) and bool((out_fw[row, length:] == 0).all())
        final = state_bw.h if isinstance(state_bw, LSTMStateTuple) else state_bw
        alone_final = state.h if isinstance(state, LSTMStateTuple) else state
        if length:
            torch.testing.assert_close(final[row], alone_final[0], rtol=1e-5, atol=1e-6)
        else:
            assert bool((final[row] == 0).all())  # the initial state, as TensorFlow returns


def test_padding_does_not_reach_the_backward_pass():
    cell_fw, cell_bw = _cells("lstm", 1, 4), _cells("lstm", 1, 5)
    inputs = torch.randn(4, 5, 3)
    garbage = torch.cat([inputs, torch.randn(4, 3, 3)], dim=1)
    mask = (torch.arange(5) < torch.tensor(LENGTHS)[:, None]).unsqueeze(2)
    garbage[:, :5] = torch.where(mask, inputs, torch.randn(4, 5, 3))
    (fw, bw), _ = bidirectional_dynamic_rnn(cell_fw, cell_bw, inputs, sequence_length=LENGTHS)
    (fw_g, bw_g), _ = bidirectional_dynamic_rnn(cell_fw, cell_bw, garbage, sequence_length=LENGTHS)
    assert torch.equal(fw, fw_g[:, :5]) and torch.equal(bw, bw_g[:, :5])


def test_states_are_checked_and_exported():
    assert charrnn.bidirectional_dynamic_rnn is bidirectional_dynamic_rnn
    cell_fw, cell_bw = _cells("lstm", 1, 6), _cells("rnn", 1, 7)
    inputs = torch.randn(2, 3, 3)
    _, (state_fw, state_bw) = bidirectional_dynamic_rnn(
        cell_fw, cell_bw, inputs, initial_state_fw=(torch.ones(2, 6), torch.ones(2, 6)))
    assert isinstance(state_fw, LSTMStateTuple) and state_bw.shape == (2, 6)
    with pytest.raises(ValueError, match="initial_state"):
        bidirectional_dynamic_rnn(cell_fw, cell_bw, inputs, initial_state_bw=torch.ones(3, 6))
    with pytest.raises(ValueError, match="batch-major"):
        bidirectional_dynamic_rnn(cell_fw, cell_bw, torch.ones(2, 3))
