"""The cells, dynamic_rnn and sequence_loss against TensorFlow 1's own outputs (fixtures)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from charrnn import BasicLSTMCell, BasicRNNCell, dynamic_rnn, sequence_loss

FIXTURES = Path(__file__).parent / "fixtures" / "tf"
TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}


def load(name):
    with np.load(FIXTURES / f"{name}.npz") as data:
        return {key: data[key] for key in data.files}


def run_fixture(data, fused):
    num_units = int(np.asarray(data["num_units"]).reshape(-1)[0])
    if str(data["cell_type"]) == "lstm":
        cell = BasicLSTMCell(num_units, forget_bias=float(data["forget_bias"]))
    else:
        cell = BasicRNNCell(num_units)
    cell.load_tf_weights(data["kernel_0"], data["bias_0"])
    x = torch.tensor(data["x"], requires_grad=True)
    outputs, state = dynamic_rnn(cell, x, sequence_length=data.get("sequence_length"), fused=fused)
    (outputs * torch.tensor(data["d_outputs"])).sum().backward()
    return cell, x, outputs, state


@pytest.mark.parametrize("name", ["rnn_1layer", "lstm_1layer", "lstm_seqlen"])
@pytest.mark.parametrize("fused", [False, True], ids=["step", "fused"])
def test_outputs_states_and_gradients_match_tensorflow(name, fused):
    data = load(name)
    cell, x, outputs, state = run_fixture(data, fused)
    np.testing.assert_allclose(outputs.detach().numpy(), data["outputs"], **TOLERANCE)
    if isinstance(cell, BasicLSTMCell):
        np.testing.assert_allclose(state.h.detach().numpy(), data["final_h_0"], **TOLERANCE)
        np.testing.assert_allclose(state.c.detach().numpy(), data["final_c_0"], **TOLERANCE)
    else:
        np.testing.assert_allclose(state.detach().numpy(), data["final_h_0"], **TOLERANCE)
    grad_kernel, grad_bias = cell.to_tf_layout(cell.weight_ih.grad, cell.weight_hh.grad, cell.bias.grad)
    np.testing.assert_allclose(grad_kernel.numpy(), data["grad_kernel_0"], **TOLERANCE)
    np.testing.assert_allclose(grad_bias.numpy(), data["grad_bias_0"], **TOLERANCE)
    kernel, bias = cell.tf_weights()
    np.testing.assert_array_equal(kernel.numpy(), data["kernel_0"])
    np.testing.assert_array_equal(bias.numpy(), data["bias_0"])
    np.testing.assert_allclose(x.grad.numpy(), data["grad_x"], **TOLERANCE)


def test_outputs_past_sequence_length_are_exactly_zero():
    data = load("lstm_seqlen")
    for fused in (False, True):
        _, _, outputs, _ = run_fixture(data, fused)
        for row, length in enumerate(data["sequence_length"]):
            assert torch.all(outputs[row, length:] == 0)


def test_sequence_loss_matches_tensorflow():
    data = load("seq_loss")
    logits = torch.tensor(data["logits"], requires_grad=True)
    targets = torch.tensor(data["targets"])
    weights = torch.tensor(data["weights"])
    loss = sequence_loss(logits, targets, weights)
    np.testing.assert_allclose(loss.item(), data["loss"], **TOLERANCE)
    loss.backward()
    np.testing.assert_allclose(logits.grad.numpy(), data["d_logits"], **TOLERANCE)
    variants = {
        "loss_per_example": dict(average_across_timesteps=True, average_across_batch=False),
        "loss_per_timestep": dict(average_across_timesteps=False, average_across_batch=True),
        "loss_unreduced": dict(average_across_timesteps=False, average_across_batch=False),
    }
    for key, flags in variants.items():
        value = sequence_loss(logits.detach(), targets, weights, **flags)
        np.testing.assert_allclose(value.numpy(), data[key], **TOLERANCE)
