"""Low-precision step kernels: one step of an LSTM stack on weights packed once.

One stream of a character model reads every weight once per character, so its speed is the
memory bandwidth divided by the bytes of weights (a 2x512 LSTM: 13 MB in float32). This module
gives the sampler's step cheaper weights and a cheaper loop:

- ``float32``: the weights re-laid out once for oneDNN (``torch.ops.mkldnn``), not per call;
- ``bfloat16``: the same in bfloat16 (half the bytes; AVX512-BF16 instructions where the CPU has
  them);
- ``int8``: weights rounded to 8 bits per output row, each row on its own scale (a quarter of
  the bytes). On x86 the products run on fbgemm's int8 kernels, which also round each step's
  inputs to 8 bits (on their range, chosen per call: one stream's vector, or all the streams'
  together). Without fbgemm (other
  CPUs, GPUs) the rounded weights are kept widened to float32: int8's numbers at float32's
  speed. ``bench/bench_sample.py`` holds the loss of validation text stepped this way to
  within 0.01 nats per character of float32's.

An LSTM layer's input and recurrent products are one product of ``[W_ih | W_hh]`` with the
concatenated ``[x_t, h_{t-1}]``: every layer's ``h`` lives side by side in one buffer
``(B, L·N)``, so layer ``l`` reads ``[h_{l-1}, h_l]`` as one slice and nothing is copied. The
first layer's input is a character, so its input product (with both biases) is a table
``(V, 4N)`` computed once. The cell candidate's rows are doubled so that one sigmoid serves all
four gates: ``tanh(a) = 2·sigmoid(2a) - 1``. Per layer and character that leaves one matrix
product and six small element-wise calls into buffers made once; the products' outputs are the
only tensors made per step.
"""

from __future__ import annotations

import warnings

import torch
from torch.nn import functional as F

#: The precisions of the step kernels, by the name ``charrnn sample --dtype`` takes.
PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16, "int8": torch.int8}


def precision_name(dtype: torch.dtype | None) -> str:
    """``'float32'``, ``'bfloat16'`` or ``'int8'`` for a dtype of :data:`PRECISIONS` (None: float32)."""
    for name, known in PRECISIONS.items():
        if dtype is None and name == "float32" or dtype == known:
            return name
    raise ValueError(f"no step kernel for dtype {dtype}; expected one of {', '.join(PRECISIONS)}")


#: oneDNN's call costs ~15 us whatever the size; in float32 it beats ``addmm`` only on large weights
#: (2048 x 1024: 143 us against 162 on the bench machine; 2048 x 512: 87 against 92; 65 x 512:
#: 18 against 4.5). In bfloat16 ``addmm`` has no fast kernel, so oneDNN serves every size.
MKLDNN_FLOAT32_MIN_WEIGHTS = 1 << 20


def _has_mkldnn_linear() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _has_fbgemm_int8() -> bool:
    return "fbgemm" in torch.backends.quantized.supported_engines and \
        hasattr(torch, "fbgemm_linear_int8_weight_fp32_activation")


class PackedLinear:
    """``x (B, in) -> x Wᵀ + b (B, out)`` on a weight packed once in one precision.

    Parameters
    ----------
    weight : Tensor ``(out, in)``, bias : Tensor ``(out,)``
        float32; copied, never kept.
    precision : str
        One of :data:`PRECISIONS`.
    batch_size : int
        The rows of ``x`` to lay the weights out for (oneDNN's hint; other sizes still work).
    kernel : str, optional
        ``'reference'`` forces the portable kernel (``addmm``; int8's rounded weights kept
        in float32), for tests; default: the fastest this machine has for the weight's device.

    ``input_dtype`` is the dtype ``x`` must come in (bfloat16 for bfloat16, else float32); the
    output is float32 for float32 and int8, bfloat16 for bfloat16.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, precision: str, batch_size: int = 1,
                 kernel: str | None = None):
        self.precision = precision
        weight, bias = weight.detach().float().contiguous(), bias.detach().float().contiguous()
        on_cpu = weight.device.type == "cpu"
        self.input_dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
        if precision == "int8":
            # One scale per output row: row r is scale[r] * q[r] with q in [-127, 127].
            row_max = weight.abs().amax(dim=1).clamp(min=1e-12)  # (out,)
            if kernel is None and on_cpu and _has_fbgemm_int8():
                self.kernel = "fbgemm"
                with warnings.catch_warnings():  # the legacy ops say once per process that they
                    warnings.simplefilter("ignore")  # are deprecated: no news for the user
                    # fbgemm rounds the whole matrix on one grid; rows scaled to [-1, 1] first
                    # make that grid per row, 255 steps over each row's range.
                    parts = torch.fbgemm_linear_quantize_weight(weight / row_max[:, None])
                    self._int8 = (parts[0], torch.fbgemm_pack_quantized_matrix(parts[0])) + tuple(parts[1:])
                    self._row_scale, self._bias = row_max, bias / row_max
                    self(torch.zeros(1, weight.shape[1]))  # the one warning, inside the filter
            else:
                # Without fbgemm (not x86, or a GPU): the same rounding, kept widened to float32,
                # so the numbers are int8's but the speed is float32's.
                self.kernel = "reference"
                scale = row_max / 127.0
                rounded = torch.round(weight / scale[:, None]).clamp(-127, 127) * scale[:, None]
                self._weight, self._bias = rounded, bias
                self._weight_t = self._weight.t()
        elif kernel is None and on_cpu and _has_mkldnn_linear() and (
                precision == "float32" and weight.numel() >= MKLDNN_FLOAT32_MIN_WEIGHTS
                or precision == "bfloat16" and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            self.kernel = "mkldnn"
            self._weight = torch.ops.mkldnn._reorder_linear_weight(weight.to(self.input_dtype), batch_size)
            self._bias = bias.to(self.input_dtype)
        else:
            self.kernel = "reference"
            self._weight, self._bias = weight.to(self.input_dtype), bias.to(self.input_dtype)
            self._weight_t = self._weight.t()  # (in, out), a view: addmm's cheapest form

    def __call__(self, inputs: torch.Tensor, add: torch.Tensor | None = None,
                 out: torch.Tensor | None = None) -> torch.Tensor:
        """``inputs Wᵀ + b (+ add)`` for ``inputs`` ``(B, in)`` in :attr:`input_dtype` -> ``(B, out)``.

        With ``add`` or an int8 weight, the result goes to ``out`` (float32 ``(B, out)``) when it
        is given; else it may be a new tensor.
        """
        if self.kernel == "fbgemm":
            quantized, packed, column_offsets, scale, zero_point = self._int8
            outputs = torch.fbgemm_linear_int8_weight_fp32_activation(
                inputs, quantized, packed, column_offsets, scale, zero_point, self._bias)  # (B, out)
            if add is None:
                return torch.mul(outputs, self._row_scale, out=outputs if out is None else out)
            return torch.addcmul(add, outputs, self._row_scale, out=out)
        if self.kernel == "mkldnn":
            outputs = torch.ops.mkldnn._linear_pointwise(inputs, self._weight, self._bias, "none", [], "")
        else:
            outputs = torch.addmm(self._bias, inputs, self._weight_t)
        return outputs if add is None else torch.add(outputs, add, out=out)


class PackedLSTM:
    """One step of a stack of LSTM layers and the output layer, on :class:`PackedLinear` weights.

    Parameters
    ----------
    layers : sequence of (weight_ih (4N, D), weight_hh (4N, N), bias_ih (4N,), bias_hh (4N,))
        Per layer, bottom first, in PyTorch's layout and gate order (i, f, g, o), all layers of
        one size ``N``: :func:`charrnn.fused.inference_layers`' ``weights``.
    embedding : Tensor ``(V, E)``
    head_weight : Tensor ``(V, N)``, head_bias : Tensor ``(V,)``
    precision : str
        One of :data:`PRECISIONS`, for the layers' products; the output layer stays float32
        (it is 1/50 of a 2x512 model's weights) and so does the cell state ``c``.
    batch_size : int
        Parallel streams.
    kernel : str, optional
        See :class:`PackedLinear`.

    The state is ``h`` per layer (kept in the products' input dtype, as they read it) and ``c``
    per layer (float32), each ``(B, N)``; :meth:`get_state` / :meth:`set_state` exchange it in
    the form of :func:`charrnn.fused.step_layers`, a list of ``(h, c)`` per layer.
    """

    def __init__(self, layers, embedding: torch.Tensor, head_weight: torch.Tensor, head_bias: torch.Tensor,
                 precision: str = "float32", batch_size: int = 1, kernel: str | None = None):
        num_units = layers[0][1].shape[1]
        self.num_layers, self.num_units, self.batch_size = len(layers), num_units, batch_size
        device = head_weight.device
        double = torch.ones(4 * num_units, device=device)
        double[2 * num_units:3 * num_units] = 2.0  # the candidate's rows: tanh(a) = 2 sigmoid(2a) - 1
        with torch.no_grad():
            weight_ih, weight_hh, bias_ih, bias_hh = (tensor.float() for tensor in layers[0])
            # The first layer's input product for every character, both biases in: (V, 4N).
            self.input_table = (F.linear(embedding.float(), weight_ih) + bias_ih + bias_hh) * double
            # One stream reads its row as a view made once: a Python list lookup, not an index_select.
            self._table_rows = self.input_table.split(1) if batch_size == 1 else None  # each (1, 4N)
            self.products = [PackedLinear(weight_hh * double[:, None], torch.zeros_like(bias_hh), precision,
                                          batch_size, kernel)]
            for weight_ih, weight_hh, bias_ih, bias_hh in layers[1:]:
                joined = torch.cat([weight_ih, weight_hh], dim=1).float() * double[:, None]  # (4N, 2N)
                self.products.append(PackedLinear(joined, (bias_ih + bias_hh).float() * double, precision,
                                                  batch_size, kernel))
            # float32: the output layer is small (1/50 of a 2x512 model's weights), addmm serves it.
            self.head = PackedLinear(head_weight, head_bias, "float32", batch_size, kernel="reference")
        self.hidden_dtype = self.products[0].input_dtype
        # Every layer's h side by side: layer l reads [h_{l-1}, h_l] as one slice.
        self.hidden = torch.zeros(batch_size, self.num_layers * num_units, dtype=self.hidden_dtype,
                                  device=device)  # (B, L·N)
        self.cells = [torch.zeros(batch_size, num_units, device=device) for _ in layers]  # each (B, N)
        n = num_units
        self._outputs = [self.hidden[:, layer * n:(layer + 1) * n] for layer in range(self.num_layers)]
        self._inputs = [self._outputs[0]] + [self.hidden[:, (layer - 1) * n:(layer + 1) * n]
                                             for layer in range(1, self.num_layers)]
        self._top = self._outputs[-1] if self.hidden_dtype == torch.float32 else None
        # Per layer, what a step touches: the product, its input slice, the gates' float32 buffer
        # (B, 4N) and its (i, f, g, o) views, c (B, N), a scratch buffer (B, N), the h slot (B, N).
        self._layers = []
        for layer, product in enumerate(self.products):
            gates = torch.empty(batch_size, 4 * n, device=device)
            self._layers.append((product, self._inputs[layer], gates, gates.chunk(4, dim=1), self.cells[layer],
                                 torch.empty(batch_size, n, device=device), self._outputs[layer]))

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Read one character per stream, ``ids`` ``(B,)`` long -> the next one's logits ``(B, V)`` float32."""
        if self._table_rows is not None:
            rows = self._table_rows[ids.item()]  # (1, 4N): the first layer's input product
        else:
            rows = torch.index_select(self.input_table, 0, ids)  # (B, 4N)
        for product, inputs, gates, (input_gate, forget_gate, candidate, output_gate), cell, scratch, output \
                in self._layers:
            pre_activations = product(inputs, add=rows, out=gates)  # (B, 4N)
            rows = None
            torch.sigmoid(pre_activations, out=gates)
            cell.mul_(forget_gate).addcmul_(input_gate, candidate, value=2.0).sub_(input_gate)
            torch.mul(output_gate, torch.tanh(cell, out=scratch), out=output)
        top = self._top if self._top is not None else self._outputs[-1].float()  # (B, N)
        return self.head(top)  # (B, V)

    def get_state(self) -> list:
        """Each layer's ``(h, c)``, float32 copies ``(B, N)``."""
        return [(h.float().clone(), c.clone()) for h, c in zip(self._outputs, self.cells)]

    def set_state(self, state) -> None:
        """Continue from ``state``: a list of ``(h, c)`` per layer, each ``(B, N)``."""
        with torch.no_grad():
            for (h, c), h_slot, cell in zip(state, self._outputs, self.cells):
                h_slot.copy_(h)
                cell.copy_(c)
