"""Truncated-BPTT streams: every pair right, each row continuing its stream, ranks partitioning."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn.batches import StreamBatches
from charrnn.errors import CharRNNError


@settings(max_examples=40, deadline=None)
@given(length=st.integers(2, 400), batch_size=st.integers(1, 5), sequence_length=st.integers(1, 9),
       world_size=st.integers(1, 3), data=st.data())
def test_every_batch_walks_its_streams_in_order(length, batch_size, sequence_length, world_size, data):
    num_streams = batch_size * world_size
    stream_length = (length - 1) // num_streams
    if stream_length < sequence_length:
        with pytest.raises(CharRNNError, match="too few for"):
            StreamBatches(np.arange(length), batch_size, sequence_length, 0, world_size)
        return
    rank = data.draw(st.integers(0, world_size - 1))
    # ids equal to their own positions make every check a statement about positions.
    batches = StreamBatches(np.arange(length, dtype=np.uint16), batch_size, sequence_length, rank, world_size)
    assert batches.steps_per_epoch == stream_length // sequence_length
    starts = (np.arange(batch_size) + rank * batch_size) * stream_length
    previous = None
    for step in range(batches.steps_per_epoch):
        x, y, starts_epoch = batches.next_batch()
        assert x.dtype == y.dtype == torch.int64 and x.shape == y.shape == (batch_size, sequence_length)
        assert starts_epoch == (step == 0)
        expected = starts[:, None] + step * sequence_length + np.arange(sequence_length)  # (B, T)
        assert x.numpy().tolist() == expected.tolist()
        assert y.numpy().tolist() == (expected + 1).tolist()
        if previous is not None:
            assert (x[:, 0] == previous[:, -1] + 1).all()  # continues exactly where it stopped
        previous = x
    # Every id a rank reads lies inside its own streams, and no batch reads past the text.
    assert int(y.max()) <= length - 1
    assert batches.epoch == 1 and batches.position == 0


def test_pairs_are_consistent_with_arbitrary_ids():
    ids = np.random.default_rng(1).integers(0, 65, size=1000).astype(np.uint8)
    batches = StreamBatches(ids, batch_size=4, sequence_length=16)
    x, y, _ = batches.next_batch()
    stream_length = 999 // 4
    for row in range(4):
        start = row * stream_length
        assert x[row].tolist() == ids[start:start + 16].tolist()
        assert y[row].tolist() == ids[start + 1:start + 17].tolist()
    assert x.is_contiguous() and y.is_contiguous()


def test_epochs_wrap_to_the_same_batches():
    batches = StreamBatches(np.arange(101), batch_size=2, sequence_length=10)
    assert batches.steps_per_epoch == len(batches) == 5
    first_epoch = [batches.next_batch() for _ in range(5)]
    assert [starts for _, _, starts in first_epoch] == [True, False, False, False, False]
    x, y, starts_epoch = batches.next_batch()
    assert starts_epoch and batches.epoch == 1 and batches.position == 1
    assert torch.equal(x, first_epoch[0][0]) and torch.equal(y, first_epoch[0][1])


def test_ranks_partition_the_streams_of_one_process():
    ids = np.random.default_rng(2).integers(0, 30, size=777)
    single = StreamBatches(ids, batch_size=6, sequence_length=8)
    ranks = [StreamBatches(ids, batch_size=2, sequence_length=8, rank=rank, world_size=3) for rank in range(3)]
    assert all(rank.steps_per_epoch == single.steps_per_epoch for rank in ranks)
    for _ in range(single.steps_per_epoch + 2):
        x, y, starts = single.next_batch()
        parts = [rank.next_batch() for rank in ranks]
        assert torch.equal(torch.cat([part[0] for part in parts]), x)
        assert torch.equal(torch.cat([part[1] for part in parts]), y)
        assert all(part[2] == starts for part in parts)


def test_state_dict_round_trip_continues_exactly():
    ids = np.arange(500)
    batches = StreamBatches(ids, batch_size=3, sequence_length=7)
    for _ in range(30):  # past the end of the first epoch (23 batches)
        batches.next_batch()
    state = json.loads(json.dumps(batches.state_dict()))
    assert state == {"epoch": 1, "position": 7, "batch_size": 3, "sequence_length": 7,
                     "world_size": 1, "num_ids": 500}
    resumed = StreamBatches(ids, batch_size=3, sequence_length=7)
    resumed.load_state_dict(state)
    for _ in range(20):
        expected, got = batches.next_batch(), resumed.next_batch()
        assert torch.equal(expected[0], got[0]) and torch.equal(expected[1], got[1]) and expected[2] == got[2]
    assert resumed.epoch == batches.epoch == 2


def test_load_state_dict_refuses_other_settings():
    state = StreamBatches(np.arange(500), batch_size=3, sequence_length=7).state_dict()
    with pytest.raises(CharRNNError, match="batch-size was 3, now 4"):
        StreamBatches(np.arange(500), batch_size=4, sequence_length=7).load_state_dict(state)
    with pytest.raises(CharRNNError, match="num-ids was 500, now 400"):
        StreamBatches(np.arange(400), batch_size=3, sequence_length=7).load_state_dict(state)
    with pytest.raises(CharRNNError, match="position 99 are not valid for 23 batches"):
        StreamBatches(np.arange(500), batch_size=3, sequence_length=7).load_state_dict({**state, "position": 99})


def test_settings_and_short_text_errors():
    with pytest.raises(CharRNNError, match=r"holds 20 characters, too few for 4 streams .* at least 25"):
        StreamBatches(np.arange(20), batch_size=2, sequence_length=6, rank=1, world_size=2)
    StreamBatches(np.arange(25), batch_size=2, sequence_length=6, rank=1, world_size=2)  # exactly enough
    with pytest.raises(CharRNNError, match="batch-size must be a positive integer, got 0"):
        StreamBatches(np.arange(100), batch_size=0, sequence_length=6)
    with pytest.raises(CharRNNError, match=r"rank must be in \[0, 2\), got 2"):
        StreamBatches(np.arange(100), batch_size=1, sequence_length=6, rank=2, world_size=2)
    with pytest.raises(CharRNNError, match="one-dimensional"):
        StreamBatches(np.zeros((10, 10)), batch_size=1, sequence_length=2)


def test_reads_a_memory_map_without_copying_it(tmp_path):
    path = tmp_path / "ids.bin"
    np.arange(10_000, dtype=np.uint16).tofile(path)
    ids = np.memmap(path, dtype=np.uint16, mode="r")
    batches = StreamBatches(ids, batch_size=4, sequence_length=32)
    assert np.shares_memory(batches.ids, ids)
    x, y, _ = batches.next_batch()
    assert x[1, 0].item() == 9_999 // 4 and type(x) is torch.Tensor
