"""The fused path (PyTorch's kernels) gives the step loop's numbers for every standard cell."""

import pytest
import torch

from charrnn import BasicRNNCell, MultiRNNCell, dynamic_rnn, make_cell
from charrnn.fused import fused_layers
from charrnn.unroll import flatten_state

FUSED_KINDS = ["rnn", "lstm", "gru-reset-after"]


def make(kind, layers, input_size=3, units=4):
    torch.manual_seed(0)
    cells = [make_cell(kind, units, input_size if layer == 0 else units) for layer in range(layers)]
    cell = cells[0] if layers == 1 else MultiRNNCell(cells)
    with torch.no_grad():  # non-zero biases so that bias handling is exercised
        for parameter in cell.parameters():
            if parameter.dim() == 1:
                parameter.uniform_(-0.5, 0.5)
    return cell


def random_state(cell, batch):
    return torch.utils._pytree.tree_map(lambda t: torch.randn_like(t), cell.zero_state(batch))


@pytest.mark.parametrize("kind", FUSED_KINDS)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("lengths", [None, [5, 3, 0, 1]], ids=["full", "lengths"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero", "initial"])
def test_fused_equals_step_loop(kind, layers, lengths, with_state):
    cell = make(kind, layers)
    assert fused_layers(cell) is not None
    x = torch.randn(4, 5, 3, requires_grad=True)
    state = random_state(cell, 4) if with_state else None
    results = []
    for fused in (True, False):
        cell.zero_grad()
        x.grad = None
        outputs, final = dynamic_rnn(cell, x, sequence_length=lengths, initial_state=state, fused=fused)
        leaves = flatten_state(final)
        (outputs.sum() + sum(leaf.pow(2).sum() for leaf in leaves)).backward()
        grads = [p.grad.clone() for p in cell.parameters()] + [x.grad.clone()]
        results.append((outputs.detach(), [leaf.detach() for leaf in leaves], grads))
    (out_f, state_f, grad_f), (out_s, state_s, grad_s) = results
    torch.testing.assert_close(out_f, out_s, atol=1e-5, rtol=1e-5)
    for a, b in zip(state_f + grad_f, state_s + grad_s):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    if lengths is not None:
        assert torch.all(out_f[2] == 0)  # length 0: no output ...
        initial = state if state is not None else cell.zero_state(4)
        for leaf, start in zip(flatten_state(results[0][1]),
                               flatten_state(initial)):
            torch.testing.assert_close(leaf[2], start[2])  # ... and the initial state back


def test_forget_bias_other_than_one_is_fused_correctly():
    torch.manual_seed(0)
    cell = make_cell("lstm", 4, 3)
    cell.forget_bias = 0.3
    x = torch.randn(2, 6, 3)
    torch.testing.assert_close(dynamic_rnn(cell, x, fused=True)[0], dynamic_rnn(cell, x, fused=False)[0])


def test_mixed_stack_runs_layer_by_layer_with_the_same_numbers():
    torch.manual_seed(0)
    stack = MultiRNNCell([make_cell("lstm", 4, 3), make_cell("gru", 4, 4), make_cell("rnn", 2, 4)])
    assert fused_layers(stack) is None
    x = torch.randn(3, 5, 3)
    fast, fast_state = dynamic_rnn(stack, x, sequence_length=[5, 2, 0])
    slow, slow_state = dynamic_rnn(stack, x, sequence_length=[5, 2, 0], fused=False)
    torch.testing.assert_close(fast, slow)
    for a, b in zip(flatten_state(fast_state), flatten_state(slow_state)):
        torch.testing.assert_close(a, b)


def test_unfusable_cells_take_the_step_loop():
    cell = BasicRNNCell(3, input_size=2, activation=torch.sigmoid)
    assert fused_layers(cell) is None
    with pytest.raises(ValueError, match="no fused form"):
        dynamic_rnn(cell, torch.zeros(1, 2, 2), fused=True)
    assert fused_layers(make_cell("gru", 3, 2)) is None


def test_stack_dropout_only_in_training():
    torch.manual_seed(0)
    stack = MultiRNNCell([make_cell("lstm", 8, 3), make_cell("lstm", 8, 8)], dropout=0.5)
    x = torch.randn(2, 4, 3)
    stack.eval()
    first, _ = dynamic_rnn(stack, x)
    torch.testing.assert_close(first, dynamic_rnn(stack, x, fused=False)[0])
    stack.train()
    assert not torch.allclose(dynamic_rnn(stack, x)[0], first)


def test_sequence_length_is_validated():
    cell = make_cell("lstm", 3, 2)
    with pytest.raises(ValueError, match=r"lie in \[0, 4\]"):
        dynamic_rnn(cell, torch.zeros(2, 4, 2), sequence_length=[5, 1])
    with pytest.raises(ValueError, match="2 integers"):
        dynamic_rnn(cell, torch.zeros(2, 4, 2), sequence_length=[1, 2, 3])
    with pytest.raises(ValueError, match="batch-major"):
        dynamic_rnn(cell, torch.zeros(4, 2))


def test_zero_time_steps_give_back_the_initial_state():
    cell = make_cell("lstm", 3, 2)
    outputs, state = dynamic_rnn(cell, torch.zeros(2, 0, 2))
    assert outputs.shape == (2, 0, 3) and torch.all(state.h == 0)
