"""charrnn: character-level recurrent neural networks on PyTorch.

The building blocks of the classic TensorFlow 1 RNN lecture, with its exact math:

>>> import torch, charrnn
>>> cell = charrnn.BasicRNNCell(num_units=2)
>>> outputs, state = charrnn.dynamic_rnn(cell, torch.tensor([[[1., 0., 0., 0.]]]))
>>> tuple(outputs.shape)
(1, 1, 2)
"""

from charrnn.cells import (
    BasicLSTMCell,
    BasicRNNCell,
    GRUCell,
    LSTMStateTuple,
    MultiRNNCell,
    ResetAfterGRUCell,
    RNNCell,
    make_cell,
)
from charrnn.errors import CharRNNError
from charrnn.layers import Dense
from charrnn.losses import sequence_loss
from charrnn.optim import TFAdam
from charrnn.unroll import bidirectional_dynamic_rnn, dynamic_rnn
from charrnn.vocabulary import UnknownCharacterError, Vocabulary, one_hot
from charrnn.windows import sliding_windows, text_from_windows

__version__ = "0.1.0"

__all__ = [
    "BasicLSTMCell", "BasicRNNCell", "CharRNNError", "Dense", "GRUCell", "LSTMStateTuple",
    "MultiRNNCell", "RNNCell", "ResetAfterGRUCell", "TFAdam", "UnknownCharacterError",
    "Vocabulary", "bidirectional_dynamic_rnn", "dynamic_rnn", "make_cell", "one_hot", "sequence_loss",
    "sliding_windows", "text_from_windows",
]
