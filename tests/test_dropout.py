"""charrnn.dropout: dropout with a mask drawn four elements to a 64-bit draw on the CPU."""

import pytest
import torch

from charrnn.cells import BasicLSTMCell, MultiRNNCell
from charrnn.dropout import Dropout, LockedDropout, dropout, keep_mask
from charrnn.unroll import dynamic_rnn


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5, 0.9])
def test_each_element_is_dropped_with_probability_p_independently_of_its_neighbours(p):
    torch.manual_seed(0)
    mask = keep_mask((400_000,), p).float()
    assert mask.mean().item() == pytest.approx(1 - p, abs=0.003)
    # the four 16-bit pieces of one 64-bit draw are as independent as any two draws
    pieces = mask.view(-1, 4)
    for first, second in ((0, 1), (1, 2), (2, 3), (0, 3)):
        both = (pieces[:, first] * pieces[:, second]).mean().item()
        assert both == pytest.approx((1 - p) ** 2, abs=0.004)
    assert keep_mask((3, 5, 7), p).shape == (3, 5, 7)  # a count that is not a multiple of four


def test_dropout_zeroes_or_scales_each_element_keeps_the_mean_and_passes_the_gradient_through_the_mask():
    torch.manual_seed(1)
    inputs = torch.full((64, 50, 32), 3.0, requires_grad=True)
    outputs = dropout(inputs, 0.2)
    values = set(outputs.detach().unique().tolist())
    assert len(values) == 2 and 0.0 in values
    scaled = max(values)
    assert scaled == pytest.approx(3.0 / 0.8, rel=1e-4)  # 1 / (1 - p), p rounded to 2^-16
    assert outputs.mean().item() == pytest.approx(3.0, rel=0.01)
    outputs.sum().backward()
    assert torch.equal(inputs.grad, outputs.detach() / 3.0)  # the mask, scaled: nothing else
    for dtype in (torch.bfloat16, torch.float64):
        assert dropout(inputs.detach().to(dtype), 0.5).dtype == dtype


def test_dropout_is_the_identity_in_evaluation_and_at_zero_and_refuses_a_probability_outside_0_1():
    inputs = torch.randn(4, 6)
    assert dropout(inputs, 0.5, training=False) is inputs
    assert dropout(inputs, 0.0) is inputs
    module = Dropout(0.5).eval()
    assert module(inputs) is inputs and "p=0.5" in repr(module)
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\)"):
            dropout(inputs, bad)
        with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\)"):
            Dropout(bad)


def test_the_same_seed_draws_the_same_masks():
    inputs = torch.randn(8, 16, 24)
    torch.manual_seed(5)
    first = dropout(inputs, 0.3), LockedDropout(0.3)(inputs)
    torch.manual_seed(5)
    second = dropout(inputs, 0.3), LockedDropout(0.3)(inputs)
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_a_stack_in_training_drops_between_its_layers_and_in_evaluation_runs_one_fused_call_unchanged():
    torch.manual_seed(2)
    stack = MultiRNNCell([BasicLSTMCell(12), BasicLSTMCell(12)], dropout=0.5)
    inputs = torch.randn(3, 9, 5)
    stack.eval()
    fused, _ = dynamic_rnn(stack, inputs)
    steps, _ = dynamic_rnn(stack, inputs, fused=False)
    torch.testing.assert_close(fused, steps, rtol=1e-5, atol=1e-6)
    stack.train()
    torch.manual_seed(3)
    dropped, _ = dynamic_rnn(stack, inputs)
    torch.manual_seed(4)
    again, _ = dynamic_rnn(stack, inputs)
    assert not torch.allclose(dropped, again)  # the masks differ, so the outputs do
    # Dropping the second layer's inputs by hand gives the stack's numbers.
    torch.manual_seed(3)
    first, _ = dynamic_rnn(stack.cells[0], inputs)
    by_hand, _ = dynamic_rnn(stack.cells[1], dropout(first, 0.5))
    torch.testing.assert_close(dropped, by_hand)
