"""Cells: the equations, shapes, initialisation, TensorFlow weight loading, gradcheck."""

import numpy as np
import pytest
import torch

from charrnn import (BasicLSTMCell, BasicRNNCell, GRUCell, LSTMStateTuple, MultiRNNCell,
                     ResetAfterGRUCell, dynamic_rnn, make_cell, sequence_loss)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_basic_rnn_cell_is_tanh_of_concat_times_kernel():
    rng = np.random.default_rng(0)
    kernel, bias = rng.normal(size=(4 + 3, 3)), rng.normal(size=3)
    x, h = rng.normal(size=(2, 4)), rng.normal(size=(2, 3))
    cell = BasicRNNCell(3, input_size=4).double()
    cell.load_tf_weights(kernel, bias)
    output, state = cell(torch.tensor(x), torch.tensor(h))
    expected = np.tanh(np.concatenate([x, h], 1) @ kernel + bias)
    np.testing.assert_allclose(output.detach().numpy(), expected, rtol=1e-6)
    assert torch.equal(output, state)


def test_lstm_cell_gate_order_and_forget_bias():
    rng = np.random.default_rng(1)
    n = 3
    kernel, bias = rng.normal(size=(2 + n, 4 * n)), rng.normal(size=4 * n)
    x, c, h = rng.normal(size=(2, 2)), rng.normal(size=(2, n)), rng.normal(size=(2, n))
    cell = BasicLSTMCell(n, forget_bias=1.0)
    cell.build(2, dtype=torch.float64)
    cell.load_tf_weights(kernel, bias)
    output, state = cell(torch.tensor(x), LSTMStateTuple(torch.tensor(c), torch.tensor(h)))
    i, j, f, o = np.split(np.concatenate([x, h], 1) @ kernel + bias, 4, axis=1)
    new_c = c * sigmoid(f + 1.0) + sigmoid(i) * np.tanh(j)
    new_h = np.tanh(new_c) * sigmoid(o)
    np.testing.assert_allclose(state.c.detach().numpy(), new_c, rtol=1e-6)
    np.testing.assert_allclose(output.detach().numpy(), new_h, rtol=1e-6)
    assert cell.state_size == (n, n)


def test_gru_cell_applies_reset_before_its_matmul():
    rng = np.random.default_rng(2)
    n, d = 3, 2
    weights = [rng.normal(size=(d + n, 2 * n)), rng.normal(size=2 * n),
               rng.normal(size=(d + n, n)), rng.normal(size=n)]
    x, h = rng.normal(size=(2, d)), rng.normal(size=(2, n))
    cell = GRUCell(n)
    cell.build(d, dtype=torch.float64)
    cell.load_tf_weights(*weights)
    output, _ = cell(torch.tensor(x), torch.tensor(h))
    r, u = np.split(sigmoid(np.concatenate([x, h], 1) @ weights[0] + weights[1]), 2, axis=1)
    candidate = np.tanh(np.concatenate([x, r * h], 1) @ weights[2] + weights[3])
    np.testing.assert_allclose(output.detach().numpy(), u * h + (1 - u) * candidate, rtol=1e-6)


def test_reset_after_gru_equals_torch_gru_and_loads_keras_layout():
    torch.manual_seed(0)
    n, d = 4, 3
    reference = torch.nn.GRU(d, n, batch_first=True)
    w_ih, w_hh = reference.weight_ih_l0.detach().numpy(), reference.weight_hh_l0.detach().numpy()
    b_ih, b_hh = reference.bias_ih_l0.detach().numpy(), reference.bias_hh_l0.detach().numpy()
    # torch blocks (r, z, n) -> Keras blocks (z, r, h), kernels transposed.
    keras = lambda a: np.concatenate([a[n:2 * n], a[:n], a[2 * n:]])  # noqa: E731
    cell = ResetAfterGRUCell(n)
    cell.load_tf_weights(keras(w_ih).T, keras(w_hh).T, np.stack([keras(b_ih), keras(b_hh)]))
    x = torch.randn(2, 5, d)
    expected, expected_h = reference(x)
    for fused in (False, True):
        outputs, state = dynamic_rnn(cell, x, fused=fused)
        torch.testing.assert_close(outputs, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(state, expected_h[0], atol=1e-5, rtol=1e-5)


def test_gru_variants_compute_different_functions():
    torch.manual_seed(0)
    tf_gru, reset_after = GRUCell(4, input_size=3), ResetAfterGRUCell(4, input_size=3)
    with torch.no_grad():
        kernel = torch.cat([tf_gru.gate_kernel, tf_gru.candidate_kernel], 1)  # (D + N, 3N)
        reset_after.weight_ih.copy_(kernel[:3].t())
        reset_after.weight_hh.copy_(kernel[3:].t())
    x = torch.randn(2, 5, 3)
    assert not torch.allclose(dynamic_rnn(tf_gru, x)[0], dynamic_rnn(reset_after, x)[0])


def test_initialisation_is_glorot_uniform_with_zero_bias():
    torch.manual_seed(0)
    cell = BasicLSTMCell(50, input_size=30)
    limit = np.sqrt(6 / (80 + 200))
    kernel, _ = cell.tf_weights()
    assert kernel.shape == (80, 200)
    assert kernel.abs().max() <= limit
    assert kernel.abs().max() > 0.9 * limit
    assert abs(kernel.std().item() - limit / np.sqrt(3)) < 0.02 * limit
    assert torch.all(cell.bias == 0)
    gru = GRUCell(5, input_size=3)
    assert torch.all(gru.gate_bias == 1) and torch.all(gru.candidate_bias == 0)


def test_input_size_is_inferred_at_first_call():
    cell = BasicRNNCell(num_units=2)
    assert not cell.built and list(cell.parameters()) == []
    outputs, _ = dynamic_rnn(cell, torch.zeros(1, 1, 4))
    assert cell.input_size == 4 and cell.weight_ih.shape == (2, 4) and cell.weight_hh.shape == (2, 2)
    with pytest.raises(ValueError, match="built for inputs of size 4"):
        dynamic_rnn(cell, torch.zeros(1, 1, 5))


def test_load_tf_weights_rejects_wrong_shapes():
    cell = BasicLSTMCell(3, input_size=4)
    with pytest.raises(ValueError, match=r"kernel must have shape \[7, 12\]"):
        cell.load_tf_weights(np.zeros((7, 8)), np.zeros(12))


def test_tf_weights_round_trip_for_every_standard_cell():
    rng = np.random.default_rng(4)
    for cell in [BasicRNNCell(3), BasicLSTMCell(3)]:
        blocks = 4 if isinstance(cell, BasicLSTMCell) else 1
        kernel, bias = rng.normal(size=(2 + 3, blocks * 3)), rng.normal(size=blocks * 3)
        cell.load_tf_weights(kernel, bias)
        back_kernel, back_bias = cell.tf_weights()
        np.testing.assert_allclose(back_kernel.numpy(), kernel, rtol=1e-6)
        np.testing.assert_allclose(back_bias.numpy(), bias, rtol=1e-6)


def test_multi_rnn_cell_state_and_weights_per_layer():
    rng = np.random.default_rng(3)
    stack = MultiRNNCell([BasicLSTMCell(3), BasicRNNCell(2)])
    stack.load_tf_weights([(rng.normal(size=(4 + 3, 12)), rng.normal(size=12)),
                           (rng.normal(size=(3 + 2, 2)), rng.normal(size=2))])
    assert stack.output_size == 2 and stack.state_size == ((3, 3), 2)
    x = torch.randn(2, 5, 4)
    outputs, state = dynamic_rnn(stack, x)
    assert outputs.shape == (2, 5, 2) and isinstance(state[0], LSTMStateTuple)
    # The stack equals running its layers one after the other.
    first, first_state = dynamic_rnn(stack.cells[0], x)
    second, second_state = dynamic_rnn(stack.cells[1], first)
    torch.testing.assert_close(outputs, second)
    torch.testing.assert_close(state[1], second_state)


def test_single_step_call_equals_one_unrolled_step():
    torch.manual_seed(0)
    for name in ["rnn", "lstm", "gru", "gru-reset-after"]:
        cell = make_cell(name, 4, input_size=3)
        x = torch.randn(2, 3)
        output, _ = cell(x)
        outputs, _ = dynamic_rnn(cell, x.unsqueeze(1))
        torch.testing.assert_close(output, outputs[:, 0])


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru", "gru-reset-after"])
def test_gradcheck_float64(name):
    torch.manual_seed(0)
    cell = make_cell(name, 3, input_size=2).double()
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    # gradcheck perturbs its inputs in place, so passing the cell's own parameters checks them.
    parameters = tuple(cell.parameters())

    def function(inputs, *weights):
        return dynamic_rnn(cell, inputs, sequence_length=[4, 2], fused=False)[0]

    assert torch.autograd.gradcheck(function, (x, *parameters))


def test_gradcheck_sequence_loss():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 4, (2, 3))
    weights = torch.rand(2, 3, dtype=torch.float64)
    for flags in [(True, True), (True, False), (False, True), (False, False)]:
        assert torch.autograd.gradcheck(lambda z: sequence_loss(z, targets, weights, *flags), (logits,))
