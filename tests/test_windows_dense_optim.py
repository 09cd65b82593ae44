"""Sliding windows, reconstruction, the dense layer and TensorFlow 1's Adam."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from charrnn import Dense, TFAdam, sliding_windows, text_from_windows
from charrnn.lecture import LONG_SENTENCE


@given(st.lists(st.integers(0, 50), min_size=2, max_size=200), st.integers(1, 20))
def test_windows_are_shifted_views(ids, sequence_length):
    if len(ids) < sequence_length + 1:
        with pytest.raises(ValueError):
            sliding_windows(ids, sequence_length)
        return
    source = torch.tensor(ids)
    x, y = sliding_windows(source, sequence_length)
    assert x.shape == y.shape == (len(ids) - sequence_length, sequence_length)
    for i in range(len(x)):
        assert x[i].tolist() == ids[i:i + sequence_length]
        assert y[i].tolist() == ids[i + 1:i + sequence_length + 1]
    assert x.untyped_storage().data_ptr() == source.untyped_storage().data_ptr()  # no copy


def test_long_sentence_gives_170_windows_and_reconstructs():
    ids = np.array([ord(c) for c in LONG_SENTENCE])
    x, y = sliding_windows(ids, 10)
    assert len(x) == 170
    texts = ["".join(map(chr, row.tolist())) for row in y]
    assert text_from_windows(texts) == LONG_SENTENCE[1:]


def test_dense_has_no_activation_by_default_and_loads_tf_layout():
    dense = Dense(3)
    inputs = torch.randn(2, 5, 4)
    kernel, bias = np.random.default_rng(0).normal(size=(4, 3)), np.arange(3.0)
    dense.load_tf_weights(kernel, bias)
    outputs = dense(inputs)
    expected = inputs.numpy() @ kernel.astype(np.float32) + bias.astype(np.float32)
    np.testing.assert_allclose(outputs.detach().numpy(), expected, rtol=1e-5, atol=1e-5)
    assert (outputs < 0).any()  # not ReLU'd


def test_tf_adam_follows_tensorflow_formula():
    lr, beta1, beta2, eps = 0.1, 0.9, 0.999, 1e-8
    weight = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    optimizer = TFAdam([weight], lr=lr)
    w, m, v = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2)
    for step in range(1, 6):
        loss = (weight ** 3).sum()
        optimizer.zero_grad()
        loss.backward()
        grad = 3 * w ** 2
        optimizer.step()
        m += (grad - m) * (1 - beta1)
        v += (grad ** 2 - v) * (1 - beta2)
        lr_t = lr * math.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
        w = w - lr_t * m / (np.sqrt(v) + eps)
        np.testing.assert_allclose(weight.detach().numpy(), w, rtol=1e-12)


def test_tf_adam_differs_from_torch_adam_only_through_epsilon():
    def run(optimizer_class, eps):
        weight = torch.tensor([1e-3, 2.0], dtype=torch.float64, requires_grad=True)
        optimizer = optimizer_class([weight], lr=0.01, eps=eps)
        for _ in range(3):
            optimizer.zero_grad()
            (weight ** 2).sum().mul(1e-4).backward()
            optimizer.step()
        return weight.detach()

    torch.testing.assert_close(run(TFAdam, 0.0), run(torch.optim.Adam, 0.0))
    assert not torch.allclose(run(TFAdam, 1e-4), run(torch.optim.Adam, 1e-4))
