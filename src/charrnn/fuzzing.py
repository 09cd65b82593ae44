"""Fuzzing the checkpoint loaders: mutated checkpoint files only ever raise charrnn's own clear error.

A real checkpoint (a tiny run trained for a few steps: weights, optimizer, trainer state,
configuration, vocabulary) is copied and one of its files mutated, case after case: bit
flips, random bytes, truncation, inserted bytes, edits of the safetensors header (sizes,
offsets, dtypes, shapes), random bytes for a whole file, two files swapped, a file deleted,
and JSON edits (values replaced by extreme numbers, strings, nulls, deep nesting). Then every
loader a person can reach is run on it: :func:`charrnn.checkpoint.load_model` (what ``sample``
and ``eval`` do) and the trainer's restore of a run (what ``train --resume`` does).

Each case must end in success (a model with finite weights) or a
:class:`charrnn.errors.CharRNNError` whose message is one line; :func:`fuzz` raises
``AssertionError`` naming the first case that does not. ``bench/fuzz_checkpoint.py`` runs
thousands of cases; ``tests/test_fuzz_checkpoint.py`` a few hundred.
"""

from __future__ import annotations

import json
import random
import shutil
import struct
import tempfile
import traceback
from collections import Counter
from pathlib import Path

import torch

from charrnn.checkpoint import load_model
from charrnn.corpus import PreparedCorpus
from charrnn.devices import num_threads
from charrnn.errors import CharRNNError
from charrnn.training import TrainConfig, language_model_trainer, train

TEXT = "".join(f"line {i % 7}: the quick brown fox jumps over the lazy dog.\n" for i in range(60))
_SETTINGS = TrainConfig(hidden_size=8, embedding_size=4, sequence_length=8, batch_size=2, max_steps=2,
                        eval_every=2, log_every=2, eval_characters=32, num_threads=1, device="cpu")
MUTATIONS = ("flip_bits", "random_bytes", "truncate", "insert", "header_edit", "replace_file", "swap_files",
             "delete_file", "json_edit")


def make_run(folder: Path) -> Path:
    """A tiny trained run in ``folder / 'run'`` (its checkpoints/latest is what gets mutated)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.txt").write_text(TEXT, encoding="utf-8")
    train(_SETTINGS, [folder / "corpus.txt"], folder / "run", progress=False)
    return folder / "run"


# -- mutations ------------------------------------------------------------------------------------------
def _header_edit(data: bytearray, rng: random.Random) -> bytearray:
    """Change the safetensors header: its length prefix, or a number, dtype or name inside it."""
    if len(data) < 8 or rng.random() < 0.25:
        value = rng.choice([0, 1, 7, len(data), len(data) + 1, 2 ** 31, 2 ** 63 - 1, 2 ** 64 - 1])
        return bytearray(struct.pack("<Q", value)) + data[8:]
    size = struct.unpack("<Q", bytes(data[:8]))[0]
    header = bytes(data[8:8 + size]).decode("utf-8", "replace")
    choices = [
        lambda text: text.replace('"F32"', rng.choice(['"F16"', '"I64"', '"BOOL"', '"U8"', '"F64"', '"XX"']), 1),
        lambda text: text.replace('"shape":[', rng.choice(['"shape":[0,', '"shape":[99999999,', '"shape":[-1,']), 1),
        lambda text: text.replace('"data_offsets":[', rng.choice(['"data_offsets":[7,', '"data_offsets":[-4,',
                                                                  '"data_offsets":[1e30,']), 1),
        lambda text: text.replace("weight", rng.choice(["weigh", "bias", "weight.weight"]), 1),
        lambda text: text[: rng.randrange(len(text) + 1)],
    ]
    edited = rng.choice(choices)(header).encode("utf-8")
    prefix = struct.pack("<Q", len(edited)) if rng.random() < 0.8 else data[:8]
    return bytearray(prefix) + bytearray(edited) + data[8 + size:]


def _json_edit(text: str, rng: random.Random) -> str:
    """Replace one JSON value (or the whole document) with something a loader must refuse."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    strange = [0, -1, 10 ** 12, 1e308, float("nan"), "lstm", "", None, [], {}, True, "\u20ac" * 3,
               [[[[[[[[[[[]]]]]]]]]]]]
    if not isinstance(value, dict) or not value or rng.random() < 0.1:
        return rng.choice(["[" * 100_000 + "]" * 100_000, "null", "1", '"text"', "{", json.dumps(strange)])
    target = value
    path = []
    while isinstance(target, dict) and target and rng.random() < 0.7:
        key = rng.choice(list(target))
        if not isinstance(target[key], (dict, list)):
            break
        path.append(key)
        target = target[key]
        if isinstance(target, list):
            break
    if isinstance(target, dict) and target:
        key = rng.choice(list(target))
        if rng.random() < 0.2:
            del target[key]
        else:
            target[key] = rng.choice(strange)
    elif isinstance(target, list) and target:
        index = rng.randrange(len(target))
        choice = rng.random()
        if choice < 0.3:
            del target[index]
        elif choice < 0.6:
            target.append(target[index])
        else:
            target[index] = rng.choice(strange)
    return json.dumps(value, allow_nan=True)


def mutate(folder: Path, rng: random.Random) -> str:
    """Damage one file of the checkpoint ``folder`` in place; returns the mutation's name."""
    files = sorted(path for path in folder.iterdir() if path.is_file())
    victim = rng.choice(files)
    mutation = rng.choice(MUTATIONS)
    data = bytearray(victim.read_bytes())
    if mutation == "flip_bits":
        for _ in range(rng.randint(1, 8)):
            if data:
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif mutation == "random_bytes":
        for _ in range(rng.randint(1, 8)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
    elif mutation == "truncate":
        data = data[: rng.randrange(len(data) + 1)]
    elif mutation == "insert":
        at = rng.randrange(len(data) + 1)
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif mutation == "header_edit":
        if victim.suffix == ".safetensors":
            data = _header_edit(data, rng)
        else:
            data = bytearray(_json_edit(data.decode("utf-8", "replace"), rng).encode("utf-8"))
            mutation = "json_edit"
    elif mutation == "replace_file":
        data = bytearray(rng.randbytes(rng.choice([0, 1, 8, 64, 4096])))
    elif mutation == "swap_files":
        other = rng.choice([path for path in files if path != victim])
        other_data = other.read_bytes()
        other.write_bytes(bytes(data))
        data = bytearray(other_data)
    elif mutation == "delete_file":
        victim.unlink()
        return mutation
    elif mutation == "json_edit":
        if victim.suffix == ".json":
            data = bytearray(_json_edit(data.decode("utf-8", "replace"), rng).encode("utf-8"))
        else:
            data = _header_edit(data, rng)
            mutation = "header_edit"
    victim.write_bytes(bytes(data))
    return mutation


# -- loaders --------------------------------------------------------------------------------------------
def load_everything(run: Path) -> None:
    """What ``sample``/``eval`` and ``train --resume`` read from a run's checkpoints/latest."""
    latest = run / "checkpoints" / "latest"
    loaded = load_model(latest)
    for name, tensor in loaded.model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise AssertionError(f"loaded non-finite weights in {name}")
    trainer = language_model_trainer(_SETTINGS, PreparedCorpus.open(run / "data"), run)
    trainer.checkpointer.restore(trainer, latest)


def fuzz(cases: int, seed: int = 0, work: Path | None = None, report=None) -> Counter:
    """Run ``cases`` mutated checkpoints through the loaders.

    Returns a Counter of ``(mutation, outcome)`` with outcome 'loaded' or 'refused'. Raises
    AssertionError naming the case at the first loader failure that is not a one-line
    :class:`CharRNNError`.
    """
    with num_threads(1):  # a tiny model: more threads only wait on each other
        return _fuzz(cases, seed, work, report)


def _fuzz(cases: int, seed: int, work: Path | None, report) -> Counter:
    owned = work is None
    work = Path(tempfile.mkdtemp(prefix="fuzz-checkpoint-")) if owned else Path(work)
    try:
        pristine = make_run(work / "pristine")
        rng = random.Random(seed)
        counts: Counter = Counter()
        case_run = work / "case"
        for case in range(cases):
            if case_run.exists():
                shutil.rmtree(case_run)
            shutil.copytree(pristine, case_run)
            mutations = [mutate(case_run / "checkpoints" / "latest", rng) for _ in range(rng.choice([1, 1, 1, 2]))]
            kind = "+".join(mutations)
            try:
                load_everything(case_run)
            except CharRNNError as error:
                if "\n" in str(error) or not str(error).strip():
                    raise AssertionError(f"case {case} ({kind}): the message is not one line: {str(error)!r}")
                counts[(kind, "refused")] += 1
            except Exception as error:  # the failure this script looks for
                raise AssertionError(f"case {case} ({kind}, seed {seed}): {type(error).__name__} escaped the "
                                     f"loader:\n{traceback.format_exc()}") from error
            else:
                counts[(kind, "loaded")] += 1
            if report is not None and (case + 1) % 500 == 0:
                report(f"{case + 1} cases")
        return counts
    finally:
        if owned:
            shutil.rmtree(work, ignore_errors=True)
