"""The fused fast path: a standard cell or stack run by PyTorch's own RNN kernels.

``torch.nn.LSTM``, ``nn.GRU`` and ``nn.RNN`` reach oneDNN on CPU and cuDNN on GPU through
``torch._VF``. We call those same functions with weights converted from our cells, so the
numbers are the step-by-step cell's (the tests hold them to 1e-5) at the kernels' speed.
Calling ``_VF`` directly rather than building an ``nn.LSTM`` keeps the per-call overhead low,
which matters for the lecture's tiny models; the parity tests guard the private signature.
"""

from __future__ import annotations

import warnings
from collections import namedtuple

import torch
from torch import _VF
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from charrnn.cells import FusedLayer, LSTMStateTuple, MultiRNNCell, RNNCell

_KERNELS = {"lstm": _VF.lstm, "gru": _VF.gru, "rnn_tanh": _VF.rnn_tanh, "rnn_relu": _VF.rnn_relu}


def _call_kernel(kernel, inputs: torch.Tensor, *arguments):
    """``kernel(inputs, *arguments)``, without cuDNN's warning about separate weight tensors.

    cuDNN wants one contiguous weight buffer; ours are the cells' own parameters, so the copy
    it warns of is expected. The filter is set for this call only (the user's own filters stay
    as they are), and only on CUDA: the warning is cuDNN's, and ``catch_warnings`` costs time.
    """
    if not inputs.is_cuda:
        return kernel(inputs, *arguments)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
        return kernel(inputs, *arguments)


def fused_layers(cell: RNNCell) -> list[FusedLayer] | None:
    """The layers of ``cell`` in fused form, or None when one fused call cannot run them.

    A single standard cell, or a stack of cells of one fused kind and one size, qualifies.
    """
    cells = list(cell.cells) if isinstance(cell, MultiRNNCell) else [cell]
    layers = [layer_cell.fused_layer() for layer_cell in cells]
    if any(layer is None for layer in layers):
        return None
    if len({layer.mode for layer in layers}) != 1:
        return None
    if len({layer_cell.num_units for layer_cell in cells}) != 1:
        return None
    return layers


def _to_kernel_state(state, is_stack: bool, is_lstm: bool):
    """Our state -> ``h0`` (or ``(h0, c0)``), each ``(L, B, N)``."""
    layer_states = state if is_stack else (state,)
    if is_lstm:
        h0 = torch.stack([h for _, h in layer_states])  # each (c, h), named or not
        c0 = torch.stack([c for c, _ in layer_states])
        return h0, c0
    return torch.stack(list(layer_states))


def _from_kernel_state(hidden, is_stack: bool, is_lstm: bool):
    """``h_n`` (or ``(h_n, c_n)``), each ``(L, B, N)`` -> our state."""
    if is_lstm:
        h_n, c_n = hidden
        layer_states = tuple(LSTMStateTuple(c_n[layer], h_n[layer]) for layer in range(h_n.shape[0]))
    else:
        layer_states = tuple(hidden.unbind(0))
    return layer_states if is_stack else layer_states[0]


def run_fused(cell: RNNCell, layers: list[FusedLayer], inputs: torch.Tensor,
              sequence_length: torch.Tensor | None, initial_state):
    """Run ``cell`` over ``inputs`` ``(B, T, D)`` with one fused kernel call.

    Returns ``(outputs (B, T, N), final_state)`` with ``dynamic_rnn``'s meaning.
    """
    mode = layers[0].mode
    is_lstm = mode == "lstm"
    is_stack = isinstance(cell, MultiRNNCell)
    kernel = _KERNELS[mode]
    weights = [w for layer in layers for w in (layer.weight_ih, layer.weight_hh, layer.bias_ih, layer.bias_hh)]
    dropout = cell.dropout if is_stack else 0.0
    hidden = _to_kernel_state(initial_state, is_stack, is_lstm)
    num_layers, training = len(layers), cell.training

    if sequence_length is None:
        result = _call_kernel(kernel, inputs, hidden, weights, True, num_layers, dropout, training, False, True)
        return result[0], _from_kernel_state(result[1:] if is_lstm else result[1], is_stack, is_lstm)

    batch, steps = inputs.shape[:2]
    # Packing refuses empty sequences; run them for one step and restore them below.
    packed = pack_padded_sequence(inputs, sequence_length.clamp(min=1).cpu(), batch_first=True,
                                  enforce_sorted=False)
    order, unorder = packed.sorted_indices, packed.unsorted_indices
    if is_lstm:
        sorted_hidden = tuple(h.index_select(1, order) for h in hidden)
    else:
        sorted_hidden = hidden.index_select(1, order)
    result = _call_kernel(kernel, packed.data, packed.batch_sizes, sorted_hidden, weights, True,
                          num_layers, dropout, training, False)
    # Built anew rather than by packed._replace, which torch.compile mistraces (its batch_sizes
    # come out empty and pad_packed_sequence fails).
    packed_outputs = PackedSequence(result[0], packed.batch_sizes, order, unorder)
    outputs, _ = pad_packed_sequence(packed_outputs, batch_first=True, total_length=steps)  # (B, T, N)
    final = result[1:] if is_lstm else (result[1],)
    final = [h.index_select(1, unorder) for h in final]
    empty = (sequence_length == 0).to(inputs.device)
    if bool(empty.any()):
        outputs = outputs.masked_fill(empty.view(batch, 1, 1), 0.0)
        initial = hidden if is_lstm else (hidden,)
        final = [torch.where(empty.view(1, batch, 1), h0, h) for h0, h in zip(initial, final)]
    return outputs, _from_kernel_state(tuple(final) if is_lstm else final[0], is_stack, is_lstm)


# -- one step at a time, for inference (sampling) ------------------------------------------------
#: PyTorch's one-step kernels, the ones ``nn.LSTMCell`` and kin call. For a single step they are
#: much faster on CPU than the sequence kernels above, whose oneDNN path re-lays the weights out
#: on every call.
_STEP_KERNELS = {"lstm": _VF.lstm_cell, "gru": _VF.gru_cell, "rnn_tanh": _VF.rnn_tanh_cell,
                 "rnn_relu": _VF.rnn_relu_cell}


class InferenceLayers(namedtuple("InferenceLayers", "mode weights")):
    """A cell stack's weights in PyTorch's layout, converted once, to run one step at a time.

    ``mode`` is a :class:`~charrnn.cells.FusedLayer` mode; ``weights`` holds, per layer, the
    contiguous ``(weight_ih (k·N, D), weight_hh (k·N, N), bias_ih (k·N,), bias_hh (k·N,))``.
    The tensors are detached copies: later changes to the cells' parameters do not reach them.
    """


def inference_layers(cell: RNNCell) -> InferenceLayers | None:
    """The layers of ``cell`` (a standard cell or a stack) for :func:`step_layers`, or None
    when they have no fused form (TensorFlow 1's ``gru``, a mixed stack)."""
    layers = fused_layers(cell)
    if layers is None:
        return None
    with torch.no_grad():
        weights = tuple(tuple(tensor.detach().clone().contiguous()
                              for tensor in (layer.weight_ih, layer.weight_hh, layer.bias_ih, layer.bias_hh))
                        for layer in layers)
    return InferenceLayers(layers[0].mode, weights)


def step_layers(layers: InferenceLayers, inputs: torch.Tensor, hidden: list) -> torch.Tensor:
    """Advance every layer one step: ``inputs`` ``(B, D)`` -> the top layer's output ``(B, N)``.

    ``hidden`` holds each layer's state in the kernels' form, ``(h, c)`` for an LSTM and ``h``
    otherwise (each ``(B, N)``); it is updated in place. No dropout: this is for inference.
    """
    kernel = _STEP_KERNELS[layers.mode]
    is_lstm = layers.mode == "lstm"
    output = inputs
    for layer, weights in enumerate(layers.weights):
        if is_lstm:
            h, c = kernel(output, hidden[layer], *weights)
            hidden[layer] = (h, c)
            output = h
        else:
            output = kernel(output, hidden[layer], *weights)
            hidden[layer] = output
    return output


def to_step_state(state, mode: str, is_stack: bool) -> list:
    """Our state (a cell's, or a stack's tuple of them) -> the per-layer list of :func:`step_layers`."""
    layer_states = state if is_stack else (state,)
    if mode == "lstm":
        return [(h, c) for c, h in layer_states]  # an LSTMStateTuple or a plain (c, h) pair
    return list(layer_states)


def from_step_state(hidden: list, mode: str, is_stack: bool):
    """The per-layer list of :func:`step_layers` -> our state structure."""
    if mode == "lstm":
        layer_states = tuple(LSTMStateTuple(c, h) for h, c in hidden)
    else:
        layer_states = tuple(hidden)
    return layer_states if is_stack else layer_states[0]
