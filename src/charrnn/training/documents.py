"""One document per line (``charrnn train --documents-per-line``): textgenrnn's mode for lists of
short texts (names, headlines, titles).

Each non-empty line is its own sequence, read from a fresh (zero) state after a line break and
ending by predicting the line break that closes it::

    text "ann\\nbo\\n" -> documents  x "\\nann" -> y "ann\\n"  and  x "\\nbo" -> y "bo\\n"

which is how ``charrnn sample`` starts a text (after a line break, from zeros), so the samples
are whole documents. A line longer than ``sequence_length`` is cut into pieces of that length,
each from a fresh state. Each epoch visits the documents in a new order (drawn from the run's
seed and the epoch, so a resumed run needs only its position); batches are padded to their
longest document and the padding is left out of the loss.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from charrnn.errors import CharRNNError
from charrnn.training import distributed
from charrnn.training.language_model import LanguageModelTask

#: The target of a padded position: left out of the loss.
PADDING = -100


def document_pieces(ids: np.ndarray, newline: int, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each document's targets lie: ``(starts, lengths)``, one entry per piece.

    A document is a non-empty line with its closing line break (the text's last line may
    have none); one longer than ``max_length`` targets is cut into pieces of ``max_length``.

    >>> document_pieces(np.array([0, 0, 9, 1, 2, 9, 9, 3]), newline=9, max_length=2)
    (array([0, 2, 3, 5, 7]), array([2, 1, 2, 1, 1]))
    """
    ids = np.asarray(ids)
    breaks = np.flatnonzero(ids == newline)
    line_starts = np.concatenate([[0], breaks + 1])
    line_ends = np.concatenate([breaks + 1, [len(ids)]])  # each line with its line break
    keep = line_ends - line_starts > 0
    keep &= ~((line_ends - line_starts == 1) & (ids[np.minimum(line_starts, len(ids) - 1)] == newline))
    starts, lengths = [], []
    for start, end in zip(line_starts[keep], line_ends[keep]):
        for piece in range(start, end, max_length):
            starts.append(piece)
            lengths.append(min(max_length, end - piece))
    return np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)


def document_batch(ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
                   newline: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The padded ``(x, y)`` of these pieces, each ``(B, longest)``: ``y`` the targets (padding
    :data:`PADDING`), ``x`` the character before each (a line break before a line's first)."""
    width = int(lengths.max())
    offsets = np.arange(width)[None, :]  # (1, W)
    valid = offsets < lengths[:, None]  # (B, W)
    positions = np.where(valid, starts[:, None] + offsets, 0)
    y = np.where(valid, ids[positions].astype(np.int64), PADDING)  # int64 first: the ids may be uint8
    before = positions - 1
    # A line's first target follows its line break (the text's first line, a virtual one); a
    # piece cut from a long line reads on from the character before it.
    x = np.where(valid & (before >= 0), ids[np.maximum(before, 0)].astype(np.int64), newline)
    x = np.where(valid, x, 0)
    return torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64))


class DocumentBatches:
    """Batches of whole documents, a new order each epoch; the interface of
    :class:`~charrnn.batches.StreamBatches` (``next_batch``, ``epoch``, ``steps_per_epoch``,
    ``state_dict``), so the task around it stays the language model's."""

    def __init__(self, ids: np.ndarray, newline: int, batch_size: int, sequence_length: int, seed: int,
                 rank: int = 0, world_size: int = 1):
        self.ids, self.newline = np.asarray(ids), newline
        self.batch_size, self.sequence_length, self.seed = batch_size, sequence_length, seed
        self.rank, self.world_size = rank, world_size
        self.starts, self.lengths = document_pieces(self.ids, newline, sequence_length)
        rows = batch_size * world_size
        self.steps_per_epoch = len(self.starts) // rows
        if self.steps_per_epoch < 1:
            raise CharRNNError(f"--documents-per-line: the training text holds {len(self.starts)} document(s), "
                               f"too few for a batch of {rows} (batch-size {batch_size} x {world_size} "
                               f"process(es)); use more lines or a smaller --batch-size")
        self.epoch, self.position, self._order = 0, 0, None

    def _epoch_order(self) -> np.ndarray:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(len(self.starts), generator=generator).numpy()

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """The next ``(x, y, starts_epoch)``: this rank's share of the next batch of documents."""
        if self._order is None:
            self._order = self._epoch_order()
        starts_epoch = self.position == 0
        rows = self.batch_size * self.world_size
        chosen = self._order[self.position * rows: (self.position + 1) * rows]
        mine = chosen[self.rank * self.batch_size: (self.rank + 1) * self.batch_size]
        x, y = document_batch(self.ids, self.starts[mine], self.lengths[mine], self.newline)
        self.position += 1
        if self.position == self.steps_per_epoch:
            self.epoch, self.position, self._order = self.epoch + 1, 0, None
        return x, y, starts_epoch

    def state_dict(self) -> dict:
        """Where the batches stand (the order is the seed's and the epoch's: nothing else to keep)."""
        return {"epoch": self.epoch, "position": self.position, "batch_size": self.batch_size,
                "sequence_length": self.sequence_length, "documents": int(len(self.starts))}

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict`'s output."""
        if state.get("documents") != len(self.starts):
            raise CharRNNError(f"cannot continue the data position: the run had {state.get('documents')} documents, "
                               f"now {len(self.starts)}")
        self.epoch, self.position, self._order = int(state["epoch"]), int(state["position"]), None


class DocumentTask(LanguageModelTask):
    """:class:`~charrnn.training.language_model.LanguageModelTask` over documents: no state carried
    from one batch to the next, padding out of the loss, validation per document."""

    def __init__(self, train_ids, val_ids, settings, context, device, newline: int):
        self.settings, self.context, self.device, self.newline = settings, context, device, newline
        self.batches = DocumentBatches(train_ids, newline, settings.batch_size, settings.sequence_length,
                                       settings.seed, context.rank, context.world_size)
        self.val_ids = np.asarray(val_ids)
        if not len(document_pieces(self.val_ids, newline, settings.sequence_length)[0]):
            raise CharRNNError("--documents-per-line: the validation text holds no document (no non-empty line); "
                               "use more lines or a larger --val-fraction")
        self.carried = None
        self.examples_per_step = settings.batch_size * settings.sequence_length * context.world_size

    def loss(self, network: torch.nn.Module, batch) -> torch.Tensor:
        """Mean cross-entropy (nats per character) over the documents' characters, from zeros."""
        x, y = batch
        logits, _ = network(x)  # (B, W, V), each document from the zero state
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), ignore_index=PADDING)

    def evaluate(self, model: torch.nn.Module) -> float:
        """Validation loss (nats) over the validation documents, up to ``eval_characters`` of them."""
        loss = None
        if self.context.is_main:
            loss = evaluate_documents(model, self.val_ids, self.newline, self.settings.batch_size,
                                      self.settings.sequence_length, self.device,
                                      self.settings.eval_characters or None)
        return distributed.broadcast_json(loss, self.context, self.device)


def evaluate_documents(model, ids: np.ndarray, newline: int, batch_size: int, sequence_length: int, device,
                       max_characters: int | None = None) -> float:
    """Mean cross-entropy of ``model`` on the documents of ``ids``, each read from the zero state."""
    starts, lengths = document_pieces(ids, newline, sequence_length)
    if max_characters is not None:  # the first documents that fit (at least one)
        keep = max(1, int(np.searchsorted(np.cumsum(lengths), max_characters, side="right")))
        starts, lengths = starts[:keep], lengths[:keep]
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for first in range(0, len(starts), batch_size):
                x, y = document_batch(ids, starts[first:first + batch_size], lengths[first:first + batch_size],
                                      newline)
                logits, _ = model(x.to(device))
                total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.to(device).reshape(-1),
                                               ignore_index=PADDING, reduction="sum"))
                count += int((y != PADDING).sum())
    finally:
        model.train(was_training)
    return total / max(count, 1)
