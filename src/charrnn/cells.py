"""Recurrent cells: each computes ONE time step, as TensorFlow 1's ``rnn_cell_impl`` does.

A cell declares ``output_size``, ``state_size`` and a ``zero_state``; the unroller
(:func:`charrnn.unroll.dynamic_rnn`) runs any cell over time, so cells are swappable.

The standard cells keep their weights in PyTorch's layout, ``weight_ih`` ``(k·N, D)`` and
``weight_hh`` ``(k·N, N)`` with ``k`` gate blocks of ``N = num_units`` rows, so that the fused
kernels take them as they are. TensorFlow keeps one ``kernel`` ``[D + N, k·N]`` (its first ``D``
rows multiply the input ``x_t``, its last ``N`` rows the state ``h_{t-1}``) and a ``bias``
``[k·N]``: :meth:`RNNCell.load_tf_weights` and :meth:`RNNCell.tf_weights` convert between the two.
Initialisation is TensorFlow's: Glorot-uniform over the whole ``[D + N, k·N]`` kernel, zero biases.

Every cell splits its step in two so that the unroller can hoist work out of the time loop:
:meth:`RNNCell.project_inputs` computes the input's share of the pre-activations for all time
steps in one matrix product, and :meth:`RNNCell.step` does the recurrent rest.
"""

from __future__ import annotations

import math
from collections import namedtuple
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from charrnn.checks import check_integer
from charrnn.dropout import dropout

LSTMStateTuple = namedtuple("LSTMStateTuple", ["c", "h"])
LSTMStateTuple.__doc__ = "The state of an LSTM cell: memory ``c`` and output ``h``, each ``(B, N)``."


class FusedLayer(namedtuple("FusedLayer", "mode weight_ih weight_hh bias_ih bias_hh")):
    """One layer's weights in PyTorch's fused-kernel layout (``torch.nn.LSTM`` and kin).

    ``mode`` is ``'lstm'``, ``'gru'``, ``'rnn_tanh'`` or ``'rnn_relu'``.
    """


def _as_parameter_data(array, shape: tuple[int, ...], name: str, like: torch.Tensor) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(array), dtype=like.dtype, device=like.device)
    if tuple(tensor.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {list(shape)}, got {list(tensor.shape)}")
    return tensor


class RNNCell(nn.Module):
    """Base class of the cells: one step ``(x_t, state) -> (output, new_state)``.

    Parameters
    ----------
    num_units : int
        Size of the state and of the output (TensorFlow's ``num_units``).
    input_size : int, optional
        Size of each input vector. When omitted, the weights are created at the first call,
        from the input's last dimension, as TensorFlow does. Create the optimizer after that.

    Notes
    -----
    Calling a cell, ``cell(x_t, state)``, runs one step through ``nn.Module.__call__``, so its
    hooks fire. :func:`~charrnn.unroll.dynamic_rnn` does not call the cell: it runs
    :meth:`project_inputs` and :meth:`step` (or the fused kernels on the cell's weights), so the
    cell's forward hooks, forward pre-hooks and module backward hooks do not fire there. Hook the
    module that calls ``dynamic_rnn`` (a :class:`~charrnn.model.CharLM`, say), or a tensor
    (``weight_hh.register_hook``), or read what ``dynamic_rnn`` returns.
    """

    #: How many blocks of ``num_units`` rows the weights have.
    num_blocks = 1
    #: TensorFlow's block order, as indices of our blocks (None: the same order).
    tf_block_order: tuple[int, ...] | None = None

    def __init__(self, num_units: int, input_size: int | None = None):
        super().__init__()
        self.num_units = check_integer("num_units", num_units, as_flag=False)
        self.input_size: int | None = None
        if input_size is not None:
            self.build(int(input_size))

    # -- shape ----------------------------------------------------------------------------
    @property
    def output_size(self) -> int:
        """Size of each output vector."""
        return self.num_units

    @property
    def state_size(self):
        """Size of the state: an int, or a tuple for composite states."""
        return self.num_units

    @property
    def built(self) -> bool:
        """Whether the weights exist yet."""
        return self.input_size is not None

    def zero_state(self, batch_size: int, dtype: torch.dtype | None = None, device=None):
        """An all-zero state for ``batch_size`` sequences."""
        dtype, device = self._dtype_device(dtype, device)
        return torch.zeros(batch_size, self.num_units, dtype=dtype, device=device)

    def _dtype_device(self, dtype, device):
        reference = next(self.parameters(), None)
        if dtype is None:
            dtype = reference.dtype if reference is not None else torch.get_default_dtype()
        if device is None and reference is not None:
            device = reference.device
        return dtype, device

    # -- weights --------------------------------------------------------------------------
    def _check_build(self, input_size) -> bool:
        """True when the weights must still be made; raises if built for another size."""
        if self.built:
            if input_size != self.input_size:
                raise ValueError(
                    f"{type(self).__name__} was built for inputs of size {self.input_size}, "
                    f"got inputs of size {input_size}"
                )
            return False
        check_integer("input_size", input_size, as_flag=False)
        return True

    def build(self, input_size: int, dtype: torch.dtype | None = None, device=None) -> None:
        """Create the weights for inputs of size ``input_size`` (idempotent)."""
        if not self._check_build(input_size):
            return
        self.input_size = int(input_size)
        factory = {"dtype": dtype, "device": device}
        rows = self.num_blocks * self.num_units
        self.weight_ih = nn.Parameter(torch.empty(rows, self.input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(rows, self.num_units, **factory))
        self.bias = nn.Parameter(torch.empty(rows, **factory))
        self.reset_parameters()

    def _recurrent_bias_blocks(self) -> tuple[float, ...]:
        """Per gate block, the constant in the second bias the fused kernels add (none here)."""
        return (0.0,) * self.num_blocks

    def _fused_recurrent_bias(self) -> torch.Tensor:
        """The fused kernels' second bias ``(k·N,)``, made from :meth:`_recurrent_bias_blocks`.

        Not a buffer: a buffer is neither saved nor refilled, so a model made on the meta
        device and then loaded would keep uninitialised memory in it. It is kept between calls
        (on a new tensor each call, the CPU kernels of a tiny model ran some 10 µs a layer
        slower) and made again when the weights' device or dtype or the configuration changes.
        """
        weight = self.weight_hh
        key = (weight.device, weight.dtype, self._recurrent_bias_blocks())
        kept = self.__dict__.get("_kept_recurrent_bias")
        compiling = torch.compiler.is_compiling()  # a compiled graph makes it once anyway
        if kept is not None and kept[0] == key and not compiling:
            return kept[1]
        with torch.inference_mode(False):  # made under inference_mode, it could not train
            constant = weight.new_zeros(self.num_blocks, self.num_units)  # (k, N)
            for block, value in enumerate(key[2]):
                if value:
                    constant[block].fill_(value)
        constant = constant.view(-1)  # (k·N,)
        if not compiling:
            self._kept_recurrent_bias = (key, constant)
        return constant

    def reset_parameters(self) -> None:
        """TensorFlow's defaults: Glorot-uniform over the whole ``[D + N, k·N]`` kernel, zero bias."""
        fan_in, fan_out = self.input_size + self.num_units, self.num_blocks * self.num_units
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        nn.init.uniform_(self.weight_ih, -limit, limit)
        nn.init.uniform_(self.weight_hh, -limit, limit)
        nn.init.zeros_(self.bias)

    def _reorder_blocks(self, tensor: torch.Tensor, order) -> torch.Tensor:
        """Permute the ``num_blocks`` blocks of ``tensor``'s first dimension."""
        if order is None:
            return tensor
        return torch.cat([tensor.narrow(0, block * self.num_units, self.num_units) for block in order])

    def load_tf_weights(self, kernel, bias) -> None:
        """Copy TensorFlow's ``kernel`` ``[D + N, k·N]`` and ``bias`` ``[k·N]`` into this cell."""
        kernel = np.asarray(kernel)
        if not self.built:
            self.build(kernel.shape[0] - self.num_units)
        depth, rows = self.input_size + self.num_units, self.num_blocks * self.num_units
        kernel = _as_parameter_data(kernel, (depth, rows), "kernel", self.weight_ih)
        bias = _as_parameter_data(bias, (rows,), "bias", self.bias)
        # TensorFlow's block order -> ours: invert tf_block_order (ours[i] = tf[order[i]]).
        order = self.tf_block_order
        with torch.no_grad():
            self.weight_ih.copy_(self._reorder_blocks(kernel[: self.input_size].t(), order))
            self.weight_hh.copy_(self._reorder_blocks(kernel[self.input_size:].t(), order))
            self.bias.copy_(self._reorder_blocks(bias, order))

    def to_tf_layout(self, weight_ih: torch.Tensor, weight_hh: torch.Tensor,
                     bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tensors in this cell's layout (weights or their gradients) -> TensorFlow's ``(kernel, bias)``."""
        order = self.tf_block_order
        if order is not None:
            order = [order.index(block) for block in range(self.num_blocks)]
        kernel = torch.cat([weight_ih, weight_hh], dim=1)  # (k·N, D + N)
        return self._reorder_blocks(kernel, order).t(), self._reorder_blocks(bias, order)

    def tf_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This cell's weights as TensorFlow's ``kernel`` ``[D + N, k·N]`` and ``bias``."""
        return self.to_tf_layout(self.weight_ih.detach(), self.weight_hh.detach(), self.bias.detach())

    # -- computation ----------------------------------------------------------------------
    def project_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """The input's share of the pre-activations: ``x W_ih^T + b``, ``(..., D) -> (..., k·N)``."""
        return F.linear(inputs, self.weight_ih, self.bias)

    def step(self, projected: torch.Tensor, state):
        """One step from projected inputs ``(B, k·N)`` and the previous state."""
        raise NotImplementedError

    def forward(self, inputs: torch.Tensor, state=None):
        """One step: ``inputs`` ``(B, D)``, ``state`` (zero when omitted) -> ``(output, new_state)``."""
        if not self.built:
            self.build(inputs.shape[-1], inputs.dtype, inputs.device)
        if state is None:
            state = self.zero_state(inputs.shape[0], inputs.dtype, inputs.device)
        return self.step(self.project_inputs(inputs), state)

    def fused_layer(self) -> FusedLayer | None:
        """This cell's weights for PyTorch's fused kernels, or None when it has no fused form."""
        return None

    def extra_repr(self) -> str:
        return f"num_units={self.num_units}, input_size={self.input_size}"


class BasicRNNCell(RNNCell):
    r"""The vanilla RNN cell of the lecture (TensorFlow's ``BasicRNNCell``).

    .. math::

        h_t = \tanh(W_{hh} h_{t-1} + W_{xh} x_t + b)

    TensorFlow writes it ``tanh([x_t, h_{t-1}] kernel + bias)``. The output is the new state.
    ``weight_ih`` ``(N, D)`` is ``W_{xh}``, ``weight_hh`` ``(N, N)`` is ``W_{hh}``, ``bias`` ``(N,)``.

    Parameters
    ----------
    num_units, input_size :
        See :class:`RNNCell`.
    activation : callable, optional
        ``torch.tanh`` (default) or ``torch.relu`` run fused; any other runs step by step.
    """

    def __init__(self, num_units: int, input_size: int | None = None,
                 activation: Callable[[torch.Tensor], torch.Tensor] = torch.tanh):
        super().__init__(num_units, input_size)
        self.activation = activation

    def step(self, projected, state):
        h = self.activation(torch.addmm(projected, state, self.weight_hh.t()))
        return h, h

    def fused_layer(self):
        modes = {torch.tanh: "rnn_tanh", torch.relu: "rnn_relu"}
        mode = modes.get(self.activation)
        if mode is None:
            return None
        return FusedLayer(mode, self.weight_ih, self.weight_hh, self.bias, self._fused_recurrent_bias())


class BasicLSTMCell(RNNCell):
    r"""The LSTM cell of the lecture (TensorFlow's ``BasicLSTMCell``).

    .. math::

        i, f, g, o &= \text{blocks of } W_{ih} x_t + W_{hh} h_{t-1} + b \\
        c_t &= c_{t-1}\,\sigma(f + \text{forget\_bias}) + \sigma(i)\tanh(g) \\
        h_t &= \tanh(c_t)\,\sigma(o)

    ``forget_bias`` (1.0) is added at run time; it is not part of the stored ``bias``.
    The state is :class:`LSTMStateTuple` ``(c, h)``; the output is ``h_t``.
    ``weight_ih`` ``(4N, D)``, ``weight_hh`` ``(4N, N)`` and ``bias`` ``(4N,)`` hold the blocks in
    PyTorch's order i, f, g, o; TensorFlow's kernel orders them i, j, f, o (``j`` is ``g``).
    """

    num_blocks = 4
    tf_block_order = (0, 2, 1, 3)  # ours (i, f, g, o) from TensorFlow's (i, j, f, o)

    def __init__(self, num_units: int, input_size: int | None = None, forget_bias: float = 1.0,
                 state_is_tuple: bool = True):
        if not state_is_tuple:
            raise ValueError("only state_is_tuple=True is supported (TensorFlow deprecated False)")
        self._forget_bias = float(forget_bias)
        super().__init__(num_units, input_size)

    @property
    def forget_bias(self) -> float:
        """Added to the forget gate's pre-activation at run time."""
        return self._forget_bias

    @forget_bias.setter
    def forget_bias(self, value: float) -> None:
        self._forget_bias = float(value)

    def _recurrent_bias_blocks(self):
        # forget_bias rides in the fused kernels' second bias (blocks i, f, g, o), so no op is
        # spent adding it to the trained bias.
        return (0.0, self._forget_bias, 0.0, 0.0)

    @property
    def state_size(self):
        return LSTMStateTuple(self.num_units, self.num_units)

    def zero_state(self, batch_size, dtype=None, device=None):
        h = super().zero_state(batch_size, dtype, device)
        return LSTMStateTuple(h, h.clone())

    def step(self, projected, state):
        c, h = state
        gates = torch.addmm(projected, h, self.weight_hh.t())  # (B, 4N)
        i, f, g, o = gates.chunk(4, dim=1)
        new_c = c * torch.sigmoid(f + self._forget_bias) + torch.sigmoid(i) * torch.tanh(g)
        new_h = torch.tanh(new_c) * torch.sigmoid(o)
        return new_h, LSTMStateTuple(new_c, new_h)

    def fused_layer(self):
        return FusedLayer("lstm", self.weight_ih, self.weight_hh, self.bias, self._fused_recurrent_bias())


class GRUCell(RNNCell):
    r"""TensorFlow 1's GRU cell: the reset gate acts on the state BEFORE its matrix product.

    .. math::

        [r, u] &= \sigma([x_t, h_{t-1}]\,W_g + b_g) \\
        c &= \tanh([x_t, r\,h_{t-1}]\,W_c + b_c) \\
        h_t &= u\,h_{t-1} + (1 - u)\,c

    ``gate_kernel``: ``[D + N, 2N]``, ``gate_bias``: ``[2N]`` initialised to 1.0 (TensorFlow's
    choice: start by remembering), ``candidate_kernel``: ``[D + N, N]``, ``candidate_bias``:
    ``[N]`` zeros. PyTorch's fused GRU computes another function (see
    :class:`ResetAfterGRUCell`), so this cell always runs step by step.
    """

    def build(self, input_size, dtype=None, device=None):
        if self.built:
            return super().build(input_size, dtype, device)
        self.input_size = int(input_size)
        factory = {"dtype": dtype, "device": device}
        depth, n = self.input_size + self.num_units, self.num_units
        self.gate_kernel = nn.Parameter(torch.empty(depth, 2 * n, **factory))
        self.gate_bias = nn.Parameter(torch.empty(2 * n, **factory))
        self.candidate_kernel = nn.Parameter(torch.empty(depth, n, **factory))
        self.candidate_bias = nn.Parameter(torch.empty(n, **factory))
        self.reset_parameters()

    def reset_parameters(self):
        """Glorot-uniform kernels, gate bias 1.0, candidate bias 0.0 (TensorFlow's defaults)."""
        nn.init.xavier_uniform_(self.gate_kernel)
        nn.init.ones_(self.gate_bias)
        nn.init.xavier_uniform_(self.candidate_kernel)
        nn.init.zeros_(self.candidate_bias)

    def load_tf_weights(self, gate_kernel, gate_bias, candidate_kernel, candidate_bias):
        """Copy TensorFlow's ``gates/kernel``, ``gates/bias``, ``candidate/kernel``, ``candidate/bias``."""
        gate_kernel = np.asarray(gate_kernel)
        if not self.built:
            self.build(gate_kernel.shape[0] - self.num_units)
        with torch.no_grad():
            for name, value in [("gate_kernel", gate_kernel), ("gate_bias", gate_bias),
                                ("candidate_kernel", candidate_kernel),
                                ("candidate_bias", candidate_bias)]:
                target = getattr(self, name)
                target.copy_(_as_parameter_data(value, target.shape, name, target))

    def tf_weights(self):
        """The four TensorFlow tensors: gate kernel and bias, candidate kernel and bias."""
        return tuple(t.detach() for t in (self.gate_kernel, self.gate_bias,
                                            self.candidate_kernel, self.candidate_bias))

    def project_inputs(self, inputs):
        d = self.input_size
        kernel = torch.cat([self.gate_kernel[:d], self.candidate_kernel[:d]], dim=1)
        bias = torch.cat([self.gate_bias, self.candidate_bias])
        return torch.addmm(bias, inputs.reshape(-1, d), kernel).view(*inputs.shape[:-1], -1)

    def step(self, projected, state):
        d, n = self.input_size, self.num_units
        gate_x, candidate_x = projected.split([2 * n, n], dim=1)
        r, u = torch.sigmoid(torch.addmm(gate_x, state, self.gate_kernel[d:])).chunk(2, dim=1)
        c = torch.tanh(torch.addmm(candidate_x, r * state, self.candidate_kernel[d:]))
        h = u * state + (1 - u) * c
        return h, h


class ResetAfterGRUCell(RNNCell):
    r"""The GRU of cuDNN and ``torch.nn.GRU``: the reset gate acts AFTER the state's product.

    .. math::

        [a_r, a_u, a_c] &= W_{ih} x_t + b_{ih}, \qquad [g_r, g_u, g_c] = W_{hh} h_{t-1} + b_{hh} \\
        r &= \sigma(a_r + g_r), \qquad u = \sigma(a_u + g_u) \\
        c &= \tanh(a_c + r\,g_c) \\
        h_t &= u\,h_{t-1} + (1 - u)\,c

    This is Keras' ``GRU(reset_after=True)``; it runs on the fused kernels.
    ``weight_ih`` ``(3N, D)`` and ``weight_hh`` ``(3N, N)`` hold the blocks r, u, c (PyTorch's
    r, z, n); ``bias`` ``(3N,)`` is the input's bias and ``recurrent_bias`` ``(3N,)`` the state's,
    both zeros at first.
    """

    num_blocks = 3

    def build(self, input_size, dtype=None, device=None):
        fresh = not self.built
        super().build(input_size, dtype, device)
        if fresh:
            self.recurrent_bias = nn.Parameter(torch.zeros_like(self.bias))

    def load_tf_weights(self, kernel, recurrent_kernel, bias):
        """Copy Keras' ``GRU(reset_after=True)`` weights.

        ``kernel`` ``[D, 3N]`` and ``recurrent_kernel`` ``[N, 3N]`` in Keras' block order
        (u, r, c), ``bias`` ``[2, 3N]`` (input bias, recurrent bias).
        """
        kernel, recurrent_kernel, bias = map(np.asarray, (kernel, recurrent_kernel, bias))
        if not self.built:
            self.build(kernel.shape[0])
        n = self.num_units
        order = np.r_[n:2 * n, 0:n, 2 * n:3 * n]  # Keras (u, r, c) -> ours (r, u, c)
        shapes = {"kernel": (kernel, (self.input_size, 3 * n)), "recurrent_kernel": (recurrent_kernel, (n, 3 * n)),
                  "bias": (bias, (2, 3 * n))}
        for name, (array, shape) in shapes.items():
            if array.shape != shape:
                raise ValueError(f"{name} must have shape {list(shape)}, got {list(array.shape)}")
        with torch.no_grad():
            for target, value in [(self.weight_ih, kernel[:, order].T), (self.weight_hh, recurrent_kernel[:, order].T),
                                  (self.bias, bias[0][order]), (self.recurrent_bias, bias[1][order])]:
                target.copy_(torch.as_tensor(np.ascontiguousarray(value), dtype=target.dtype))

    def step(self, projected, state):
        n = self.num_units
        recurrent = torch.addmm(self.recurrent_bias, state, self.weight_hh.t())  # (B, 3N)
        a_r, a_u, a_c = projected.split(n, dim=1)
        g_r, g_u, g_c = recurrent.split(n, dim=1)
        r = torch.sigmoid(a_r + g_r)
        u = torch.sigmoid(a_u + g_u)
        c = torch.tanh(a_c + r * g_c)
        h = u * state + (1 - u) * c
        return h, h

    def fused_layer(self):
        return FusedLayer("gru", self.weight_ih, self.weight_hh, self.bias, self.recurrent_bias)


class MultiRNNCell(RNNCell):
    """A stack of cells that looks like one cell (TensorFlow's ``MultiRNNCell``).

    Layer ``l`` reads layer ``l-1``'s output; the state is a tuple of the layers' states.

    Parameters
    ----------
    cells : sequence of RNNCell
        The layers, bottom first. Each may be of any type and size.
    dropout : float
        Dropout on each layer's output but the last, in training mode only (as
        ``torch.nn.LSTM``'s ``dropout``). 0 by default, as in TensorFlow.
    """

    def __init__(self, cells: Sequence[RNNCell], dropout: float = 0.0, state_is_tuple: bool = True):
        nn.Module.__init__(self)
        if not state_is_tuple:
            raise ValueError("only state_is_tuple=True is supported")
        if len(cells) == 0:
            raise ValueError("MultiRNNCell needs at least one cell")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.cells = nn.ModuleList(cells)
        self.dropout = float(dropout)
        self.num_units = self.cells[-1].num_units

    @property
    def input_size(self):
        return self.cells[0].input_size

    @property
    def output_size(self):
        return self.cells[-1].output_size

    @property
    def state_size(self):
        return tuple(cell.state_size for cell in self.cells)

    @property
    def built(self):
        return all(cell.built for cell in self.cells)

    def zero_state(self, batch_size, dtype=None, device=None):
        return tuple(cell.zero_state(batch_size, dtype, device) for cell in self.cells)

    def build(self, input_size, dtype=None, device=None):
        for cell in self.cells:
            cell.build(input_size, dtype, device)
            input_size = cell.output_size

    def reset_parameters(self):
        for cell in self.cells:
            cell.reset_parameters()

    def load_tf_weights(self, weights):
        """Load a list with one entry per layer: ``(kernel, bias)`` or the layer's own tuple."""
        if len(weights) != len(self.cells):
            raise ValueError(f"expected weights for {len(self.cells)} layers, got {len(weights)}")
        for cell, layer_weights in zip(self.cells, weights):
            cell.load_tf_weights(*layer_weights)

    def tf_weights(self):
        """One entry per layer, as each layer's :meth:`RNNCell.tf_weights` gives it."""
        return [cell.tf_weights() for cell in self.cells]

    def project_inputs(self, inputs):
        return self.cells[0].project_inputs(inputs)

    def step(self, projected, state):
        new_states = []
        output = None
        for layer, (cell, layer_state) in enumerate(zip(self.cells, state)):
            if layer > 0:
                output = dropout(output, self.dropout, self.training)
                projected = cell.project_inputs(output)
            output, new_state = cell.step(projected, layer_state)
            new_states.append(new_state)
        return output, tuple(new_states)

    def extra_repr(self):
        return f"dropout={self.dropout}" if self.dropout else ""


CELL_TYPES = {"rnn": BasicRNNCell, "lstm": BasicLSTMCell, "gru": GRUCell,
              "gru-reset-after": ResetAfterGRUCell}


def make_cell(cell_type: str, num_units: int, input_size: int | None = None) -> RNNCell:
    """A cell by name: ``'rnn'``, ``'lstm'``, ``'gru'`` (TensorFlow 1's) or ``'gru-reset-after'``."""
    try:
        cell_class = CELL_TYPES[cell_type]
    except KeyError:
        raise ValueError(f"unknown cell type {cell_type!r}; expected one of {sorted(CELL_TYPES)}") from None
    return cell_class(num_units, input_size)
