"""The dense (fully connected) projection that turns RNN outputs into logits."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from charrnn.checks import check_integer


class Dense(nn.Module):
    """``y = activation(x W + b)`` over the last dimension, in TensorFlow's layout.

    ``kernel``: ``[input_size, num_outputs]`` Glorot-uniform, ``bias``: ``[num_outputs]`` zeros.

    The activation defaults to none: logits must be free to take any value.
    (``tf.contrib.layers.fully_connected`` defaulted to ReLU, a known trap that the
    lecture avoids with ``activation_fn=None``.) ``input_size`` may be left out and is then
    taken from the first input, as TensorFlow does.
    """

    def __init__(self, num_outputs: int, input_size: int | None = None,
                 activation: Callable[[torch.Tensor], torch.Tensor] | None = None):
        super().__init__()
        self.num_outputs = check_integer("num_outputs", num_outputs, as_flag=False)
        self.activation = activation
        self.input_size: int | None = None
        if input_size is not None:
            self.build(int(input_size))

    def build(self, input_size: int, dtype: torch.dtype | None = None, device=None) -> None:
        """Create the weights for inputs of size ``input_size``."""
        if self.input_size is not None:
            if input_size != self.input_size:
                raise ValueError(f"Dense was built for inputs of size {self.input_size}, got {input_size}")
            return
        self.input_size = int(input_size)
        self.kernel = nn.Parameter(torch.empty(self.input_size, self.num_outputs, dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.zeros(self.num_outputs, dtype=dtype, device=device))
        nn.init.xavier_uniform_(self.kernel)

    def load_tf_weights(self, kernel, bias) -> None:
        """Copy TensorFlow's ``kernel`` ``[input_size, num_outputs]`` and ``bias``."""
        kernel, bias = np.asarray(kernel), np.asarray(bias)
        if self.input_size is None:
            self.build(kernel.shape[0])
        if kernel.shape != tuple(self.kernel.shape) or bias.shape != tuple(self.bias.shape):
            raise ValueError(f"expected kernel {list(self.kernel.shape)} and bias {list(self.bias.shape)}, "
                             f"got {list(kernel.shape)} and {list(bias.shape)}")
        with torch.no_grad():
            self.kernel.copy_(torch.as_tensor(kernel))
            self.bias.copy_(torch.as_tensor(bias))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """``(..., input_size) -> (..., num_outputs)``."""
        if self.input_size is None:
            self.build(inputs.shape[-1], inputs.dtype, inputs.device)
        outputs = torch.nn.functional.linear(inputs, self.kernel.t(), self.bias)
        return outputs if self.activation is None else self.activation(outputs)

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, num_outputs={self.num_outputs}"
