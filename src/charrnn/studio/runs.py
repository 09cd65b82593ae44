"""The run folders the studio may show, read-only, and the models shipped with charrnn.

A run is named by its ``source`` (``"runs"``: a folder under ``--runs``; ``"pretrained"``: a
model of :mod:`charrnn.pretrained`) and its ``name``. A run folder's name is its path below
the root, in ``/``-separated parts (``exp/lstm-256``). A name is refused before any file is
touched when a part is empty, ``.`` or ``..``, starts with ``.`` or holds ``\\`` or NUL; a path
whose real location (symbolic links followed) is not inside the root is refused too, and so is
any file of a checkpoint that lies outside it. Nothing here writes: metrics are read from a
byte offset, checkpoints only through :func:`charrnn.checkpoint.load_model`, charrnn's safe
loader (safetensors and JSON, checked before use).
"""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from charrnn.checkpoint import (
    CHECKPOINTS_FOLDER,
    CONFIG_FILE,
    MODEL_FILE,
    VOCAB_FILE,
    LoadedModel,
    load_model,
    resolve_checkpoint,
)
from charrnn.errors import CharRNNError
from charrnn.pretrained import PRETRAINED, pretrained_path
from charrnn.studio.limits import StudioLimits
from charrnn.training.reporting import METRICS_FILE

#: Where a run may be found.
RUNS, PRETRAINED_SOURCE = "runs", "pretrained"
#: How deep below the root run folders are looked for.
MAX_DEPTH = 3
#: The longest name taken.
MAX_NAME_LENGTH = 1000
#: Models kept loaded (the last ones used).
CACHED_MODELS = 3


class RunError(CharRNNError):
    """A run that may not be read (``status`` 400) or is not there (404)."""

    def __init__(self, message: str, status: int = 404):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RunRef:
    """A run the studio may read: where it came from, its name and its real folder."""

    source: str
    name: str
    folder: Path


def _is_run(folder: Path) -> bool:
    return any((folder / name).exists() for name in (CONFIG_FILE, METRICS_FILE, CHECKPOINTS_FOLDER, MODEL_FILE))


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path``'s real location is ``root`` or below it."""
    try:
        return Path(os.path.realpath(path)).is_relative_to(root)
    except (OSError, ValueError):
        return False


class RunFolders:
    """The runs under ``root`` (None: none) and the pretrained models, for the studio to read."""

    def __init__(self, root: str | os.PathLike | None, limits: StudioLimits = StudioLimits()):
        self.root = Path(os.path.realpath(root)) if root is not None else None
        self.limits = limits
        self._models: dict[tuple, LoadedModel] = {}
        self._lock = threading.Lock()

    # -- listing --------------------------------------------------------------------------------
    def list(self) -> list[dict]:
        """Every run: the pretrained models first, then the run folders under the root by name."""
        runs = [{"source": PRETRAINED_SOURCE, "name": name, "description": model.description,
                 "has_metrics": False, "has_checkpoint": True} for name, model in sorted(PRETRAINED.items())]
        for name, folder in self._find():
            runs.append({"source": RUNS, "name": name, "description": "",
                         "has_metrics": (folder / METRICS_FILE).is_file() and _inside(folder / METRICS_FILE, self.root),
                         "has_checkpoint": self._checkpoint_or_none(folder) is not None})
        return runs

    def _find(self) -> list[tuple[str, Path]]:
        """``(name, folder)`` of each run folder, breadth first, within the limits on what is looked at."""
        if self.root is None or not self.root.is_dir():
            return []
        found, queue, scanned = [], [(self.root, ())], 0
        while queue and len(found) < self.limits.max_runs and scanned < self.limits.max_folders_scanned:
            folder, parts = queue.pop(0)
            try:
                children = sorted(os.scandir(folder), key=lambda entry: entry.name)
            except OSError:
                continue
            for entry in children:
                scanned += 1
                if entry.name.startswith(".") or not entry.is_dir() or not _inside(Path(entry.path), self.root):
                    continue
                path, child_parts = Path(entry.path), (*parts, entry.name)
                if _is_run(path):
                    found.append(("/".join(child_parts), path))
                elif len(child_parts) < MAX_DEPTH:
                    queue.append((path, child_parts))
        return sorted(found)[: self.limits.max_runs]

    # -- naming ---------------------------------------------------------------------------------
    def resolve(self, source, name) -> RunRef:
        """The run ``source`` / ``name``, or a :class:`RunError` (400 for a name that is refused, 404 when absent)."""
        if not isinstance(source, str) or not isinstance(name, str):
            raise RunError("a run is named by two strings, source and name", 400)
        if source == PRETRAINED_SOURCE:
            folder = pretrained_path(name)
            if folder is None:
                raise RunError(f"no pretrained model named {name!r} (there are: {', '.join(sorted(PRETRAINED))})")
            return RunRef(source, name, folder)
        if source != RUNS:
            raise RunError(f"source must be {RUNS!r} or {PRETRAINED_SOURCE!r}, got {source[:100]!r}", 400)
        if self.root is None:
            raise RunError("the studio was started without --runs: it shows no run folders")
        parts = name.split("/")
        if (not name or len(name) > MAX_NAME_LENGTH or name.startswith("/") or "\\" in name or "\0" in name
                or any(part in ("", ".", "..") or part.startswith(".") for part in parts)):
            raise RunError(f"{name[:200]!r} is not a run name (parts below --runs, none empty, "
                           "'.', '..' or hidden)", 400)
        folder = self.root.joinpath(*parts)
        if not _inside(folder, self.root):
            raise RunError(f"{name[:200]!r} leads out of the --runs folder", 400)
        if not folder.is_dir() or not _is_run(folder):
            raise RunError(f"no run named {name[:200]!r} under --runs")
        return RunRef(source, name, Path(os.path.realpath(folder)))

    def _checkpoint_or_none(self, folder: Path) -> Path | None:
        try:
            return self._checkpoint(folder)
        except CharRNNError:
            return None

    def _checkpoint(self, folder: Path) -> Path:
        """The checkpoint folder a run resolves to, every file of it inside the root."""
        checkpoint = resolve_checkpoint(folder)
        for name in (MODEL_FILE, CONFIG_FILE, VOCAB_FILE):
            if not _inside(checkpoint / name, self.root):
                raise RunError(f"{checkpoint.name}/{name} lies outside the --runs folder: refused", 400)
        return checkpoint

    # -- reading --------------------------------------------------------------------------------
    def metrics(self, ref: RunRef, offset: int = 0) -> dict:
        """The metrics lines from byte ``offset`` on: ``records`` (step, epoch, train_loss,
        val_loss), the ``offset`` to ask from next, and ``reset`` when the log was rewritten
        (a resumed run drops its last lines) and is read again from its start."""
        empty = {"records": [], "offset": 0, "reset": False, "exists": False}
        if ref.source != RUNS:
            return empty
        path = ref.folder / METRICS_FILE
        if not path.is_file():
            return empty
        if not _inside(path, self.root):
            raise RunError(f"{ref.name}/{METRICS_FILE} lies outside the --runs folder: refused", 400)
        reset = False
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if offset > size:
                offset, reset = 0, True
            handle.seek(offset)
            data = handle.read(self.limits.max_metrics_bytes)
        end = data.rfind(b"\n") + 1  # whole lines only: the last one may be being written
        records = []
        for line in data[:end].splitlines():
            record = _metrics_record(line)
            if record is not None:
                records.append(record)
        return {"records": records, "offset": offset + end, "reset": reset, "exists": True}

    def load(self, ref: RunRef) -> LoadedModel:
        """The run's model (its best checkpoint, else its latest), loaded by charrnn's safe loader.

        Kept loaded while its weights file is unchanged: a run still training saves new
        checkpoints, and the next request loads the new one.
        """
        checkpoint = ref.folder if ref.source == PRETRAINED_SOURCE else self._checkpoint(ref.folder)
        try:
            stamp = (checkpoint / MODEL_FILE).stat().st_mtime_ns
        except OSError:
            stamp = None
        key = (str(checkpoint), stamp)
        with self._lock:
            if key in self._models:
                return self._models[key]
            loaded = load_model(checkpoint)
            self._models[key] = loaded
            while len(self._models) > CACHED_MODELS:
                self._models.pop(next(iter(self._models)))
            return loaded


def _metrics_record(line: bytes) -> dict | None:
    """The numbers of one ``metrics.jsonl`` line the page plots, or None for a line that is not one."""
    try:
        value = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("step"), int):
        return None
    record = {"step": value["step"]}
    for key in ("epoch", "train_loss", "val_loss", "learning_rate"):
        number = value.get(key)
        if isinstance(number, (int, float)) and not isinstance(number, bool) and math.isfinite(number):
            record[key] = number
    return record
