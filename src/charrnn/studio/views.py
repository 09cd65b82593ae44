"""What the page shows of a trained model: a sample made character by character, and a text
recorded unit by unit (:func:`charrnn.inspection.record`).

:class:`SampleStream` runs :func:`charrnn.sampling.sample` in a thread of its own: the
sampler holds PyTorch's inference mode across its ``yield``\\ s, and that mode belongs to one
thread, so the whole generator must run where it started. The thread hands characters to
the event loop in small batches and stops at the next character once :meth:`SampleStream.close`
is called (the browser went away).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator, Iterator

from charrnn.checks import check_choice, check_integer
from charrnn.errors import CharRNNError
from charrnn.inspect_report import value_range
from charrnn.inspection import FEATURES, best_units, record, score_units

#: Seconds (or characters) a batch of sampled characters gathers before it goes to the page.
FLUSH_SECONDS, FLUSH_CHARACTERS = 0.03, 200


class SampleStream:
    """The characters of ``characters`` (an unstarted generator), made in a thread, read asynchronously.

    ``async for kind, value in stream.events()`` gives ``("text", chunk)`` batches, then one
    ``("end", None)`` or ``("error", message)``.
    """

    def __init__(self, characters: Iterator[str]):
        self._characters = characters
        self._stop = threading.Event()
        self._queue: asyncio.Queue | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def close(self) -> None:
        """Ask the thread to stop at its next character."""
        self._stop.set()

    def _put(self, item) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the event loop is closed: the server went away
            self._stop.set()

    def _produce(self) -> None:
        try:
            batch, flushed = [], time.monotonic()
            for character in self._characters:
                if self._stop.is_set():
                    return
                batch.append(character)
                now = time.monotonic()
                if len(batch) >= FLUSH_CHARACTERS or now - flushed >= FLUSH_SECONDS:
                    self._put(("text", "".join(batch)))
                    batch, flushed = [], now
            if batch:
                self._put(("text", "".join(batch)))
            self._put(("end", None))
        except CharRNNError as error:
            self._put(("error", str(error)))
        except Exception as error:  # noqa: BLE001 - the page says what went wrong
            self._put(("error", f"{type(error).__name__}: {error}"))

    async def events(self) -> AsyncIterator[tuple[str, str | None]]:
        """The batches of characters as they are made (see the class); closes the thread when left."""
        self._loop, self._queue = asyncio.get_running_loop(), asyncio.Queue()
        threading.Thread(target=self._produce, name="charrnn-studio-sample", daemon=True).start()
        try:
            while True:
                kind, value = await self._queue.get()
                yield kind, value
                if kind != "text":
                    return
        finally:
            self.close()


def _rounded(values, digits: int = 3) -> list:
    return [None if not math.isfinite(value) else round(value, digits) for value in values.tolist()]


def inspect_view(loaded, text: str, max_characters: int, layer: int | None = None, kind: str = "h",
                 skip_unknown: bool = False) -> dict:
    """A text recorded through ``loaded.model``, as the page's inspect view draws it.

    Per character its top-5 guesses for the next one and the surprise (bits) of the one that
    came; the values of every unit of one ``layer`` (default: the top one) and ``kind`` on the
    kind's fixed scale; and per feature of :data:`charrnn.inspection.FEATURES` the unit that
    tracks it best.
    """
    recording = record(loaded.model, loaded.vocabulary, text, skip_unknown=skip_unknown,
                       max_characters=max_characters)
    layer = recording.num_layers - 1 if layer is None else check_integer(
        "layer", layer, minimum=0, maximum=recording.num_layers - 1)
    kind = check_choice("kind", kind, recording.kinds(layer))
    values = recording.layers[layer][kind]  # (T, N)
    best = []
    scores = score_units(recording, FEATURES, kinds=("h", "c"))
    for feature_name in sorted({score.feature for score in scores}, key=list(FEATURES).index):
        unit = best_units(scores, feature_name, top=1)[0]
        best.append({"feature": feature_name, "layer": unit.layer, "kind": unit.kind, "unit": unit.unit,
                     "score": round(unit.score, 3), "measure": "|r|" if unit.auc is None else "AUC"})
    surprise_bits = recording.surprise_bits
    finite = surprise_bits[:-1]
    return {
        "text": recording.text, "characters": list(recording.text),
        "layers": [{"cell": cell, "kinds": recording.kinds(index)} for index, cell in enumerate(recording.cell_types)],
        "layer": layer, "kind": kind, "range": list(value_range(kind)), "units": int(values.shape[1]),
        "values": [_rounded(row) for row in values],  # (T, N)
        "guesses": [[[character, round(probability, 4)] for character, probability in recording.guesses(position)]
                    for position in range(len(recording))],
        "surprise_bits": _rounded(surprise_bits),  # (T,), the last one null
        "loss_bits": None if len(finite) == 0 else round(float(finite.mean()), 4),
        "best_units": best,
    }
