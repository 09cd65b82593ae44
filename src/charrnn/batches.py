"""Truncated back-propagation through time: the training ids cut into parallel streams.

The ids are cut into ``S = batch_size * world_size`` streams of equal length ``L``; stream
``s`` starts at ``s * L``. Row ``b`` of consecutive batches walks one stream, ``sequence_length``
characters at a time, so a trainer can carry each row's recurrent state (detached) from one
batch to the next, as char-rnn and torch-rnn do. Rank ``r`` of a distributed run owns streams
``r * batch_size .. (r + 1) * batch_size - 1``, so the ranks together see exactly the batch a
single process with ``S`` rows would.

Examples
--------
>>> import numpy as np
>>> batches = StreamBatches(np.arange(13), batch_size=2, sequence_length=3)
>>> batches.steps_per_epoch
2
>>> x, y, starts_epoch = batches.next_batch()
>>> x.tolist(), y.tolist(), starts_epoch
([[0, 1, 2], [6, 7, 8]], [[1, 2, 3], [7, 8, 9]], True)
>>> x, y, starts_epoch = batches.next_batch()
>>> x.tolist(), starts_epoch
([[3, 4, 5], [9, 10, 11]], False)
"""

from __future__ import annotations

import numpy as np
import torch

from charrnn.checks import check_integer
from charrnn.errors import CharRNNError


def gather_windows(ids: np.ndarray, starts: np.ndarray, width: int) -> torch.Tensor:
    """Rows ``ids[start : start + width]`` for each start, as an int64 tensor ``(len(starts), width)``.

    One fancy-indexing gather: only ``len(starts) * width`` ids are read (from a memory map,
    only those pages).
    """
    offsets = starts[:, None] + np.arange(width)[None, :]  # (B, width)
    return torch.from_numpy(np.asarray(ids)[offsets].astype(np.int64))


class StreamBatches:
    """Truncated BPTT batches: the train ids cut into ``batch_size`` parallel streams.

    Parameters
    ----------
    ids : 1-D integer array
        The training ids (a memory map is fine: each batch reads only its own ids).
    batch_size : int
        Rows per batch on this rank.
    sequence_length : int
        Time steps per batch.
    rank, world_size : int
        This process's place in a distributed run (0 and 1 alone).

    Attributes
    ----------
    steps_per_epoch : int
        Batches in one pass over the streams: ``L // sequence_length`` where the stream length
        is ``L = (len(ids) - 1) // (batch_size * world_size)``. The last
        ``L % sequence_length`` characters of each stream, and the last ``(len(ids) - 1) % S``
        ids of the text, are not visited.
    epoch : int
        Completed passes.
    position : int
        Index, within the epoch, of the batch :meth:`next_batch` returns next.

    Raises
    ------
    CharRNNError
        For bad settings, or ids too short to give every stream ``sequence_length + 1`` ids.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, sequence_length: int,
                 rank: int = 0, world_size: int = 1):
        self.batch_size = check_integer("batch_size", batch_size)
        self.sequence_length = check_integer("sequence_length", sequence_length)
        self.world_size = check_integer("world_size", world_size)
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < world_size:
            raise CharRNNError(f"rank must be in [0, {world_size}), got {rank!r}")
        self.rank = int(rank)
        # A plain ndarray view of a memmap: fancy indexing then yields plain arrays.
        self.ids = np.asarray(ids)
        if self.ids.ndim != 1:
            raise CharRNNError(f"ids must be one-dimensional, got shape {list(self.ids.shape)}")
        num_streams = self.batch_size * self.world_size
        self.stream_length = (len(self.ids) - 1) // num_streams
        self.steps_per_epoch = self.stream_length // self.sequence_length
        if self.steps_per_epoch < 1:
            needed = num_streams * self.sequence_length + 1
            raise CharRNNError(
                f"the training text holds {len(self.ids)} characters, too few for "
                f"{num_streams} streams (batch-size {self.batch_size} x {self.world_size} "
                f"process(es)) of sequence-length {self.sequence_length}: it takes at least "
                f"{needed}; use more text, a smaller --batch-size or a shorter --sequence-length"
            )
        first_stream = self.rank * self.batch_size
        streams = np.arange(first_stream, first_stream + self.batch_size)  # (B,)
        self.stream_starts = streams * self.stream_length  # (B,)
        self.epoch = 0
        self.position = 0

    def __len__(self) -> int:
        return self.steps_per_epoch

    def batch_at(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``(x, y)`` of batch ``position`` of an epoch, without moving the position."""
        if not 0 <= position < self.steps_per_epoch:
            raise IndexError(f"position must be in [0, {self.steps_per_epoch}), got {position}")
        window = gather_windows(self.ids, self.stream_starts + position * self.sequence_length,
                                self.sequence_length + 1)  # (B, T + 1)
        # Contiguous copies, so that callers may .view(-1) the targets.
        return window[:, :-1].contiguous(), window[:, 1:].contiguous()  # (B, T) each

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """The next ``(x, y, starts_epoch)``, then advance (wrapping to the next epoch).

        ``x`` and ``y`` are int64 ``(batch_size, sequence_length)``, ``y`` is ``x`` one step
        ahead in each stream, and each row continues its stream where the previous batch
        stopped. ``starts_epoch`` is True for an epoch's first batch: the state carried so
        far belongs to the streams' ends, so the trainer resets it to zeros.
        """
        starts_epoch = self.position == 0
        x, y = self.batch_at(self.position)
        self.position += 1
        if self.position == self.steps_per_epoch:
            self.epoch += 1
            self.position = 0
        return x, y, starts_epoch

    def _settings(self) -> dict:
        return {"batch_size": self.batch_size, "sequence_length": self.sequence_length,
                "world_size": self.world_size, "num_ids": int(len(self.ids))}

    def state_dict(self) -> dict:
        """Where the batches stand, as JSON-able values (the same on every rank)."""
        return {"epoch": self.epoch, "position": self.position, **self._settings()}

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict`'s output.

        Raises
        ------
        CharRNNError
            When the state was saved with other settings (batch size, sequence length,
            number of processes or text length), which would cut the streams differently,
            or holds a position out of range.
        """
        differences = [f"{name.replace('_', '-')} was {state.get(name)!r}, now {value!r}"
                       for name, value in self._settings().items() if state.get(name) != value]
        if differences:
            raise CharRNNError("cannot continue the data position: " + "; ".join(differences))
        epoch, position = state.get("epoch"), state.get("position")
        if not isinstance(epoch, int) or epoch < 0 or not isinstance(position, int) \
                or not 0 <= position < self.steps_per_epoch:
            raise CharRNNError(f"cannot continue the data position: epoch {epoch!r} and position "
                               f"{position!r} are not valid for {self.steps_per_epoch} batches per epoch")
        self.epoch, self.position = epoch, position
