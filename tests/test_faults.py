"""Faults during training: kill -9 at random moments, a loss that blows up, a long run's memory.

SIGINT and SIGTERM are in ``test_robustness_cli.py`` (and ``test_train_cli.py``).
"""

from __future__ import annotations

import gc
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from charrnn.checkpoint import existing_checkpoint, load_model
from charrnn.files import load_tensors
from charrnn.training import train
from charrnn.training.settings import TrainConfig

TEXT = "".join(f"line {i % 7}: the quick brown fox jumps over the lazy dog.\n" for i in range(60))
ENVIRONMENT = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
#: A checkpoint after every step, so that a run killed at any moment resumes from its last step.
SETTINGS = dict(hidden_size=8, embedding_size=4, sequence_length=8, batch_size=2, eval_every=1, log_every=1,
                eval_characters=64, learning_rate=0.02, warmup_steps=3, max_steps=45, num_threads=1, device="cpu")


def _flags(settings: dict) -> list[str]:
    names = {"num_threads": "--threads"}
    return [argument for name, value in settings.items()
            for argument in (names.get(name, "--" + name.replace("_", "-")), str(value))]


def _saved_step(run: Path) -> int:
    """The step of the run's latest whole checkpoint (0 if none, or while it is being replaced)."""
    folder = existing_checkpoint(run / "checkpoints" / "latest")
    try:
        return json.loads((folder / "trainer.json").read_text())["step"] if folder else 0
    except (OSError, ValueError, KeyError):
        return 0


def test_kill_9_at_random_steps_then_resume_equals_an_uninterrupted_run(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    reference = train(TrainConfig(**SETTINGS), [corpus], tmp_path / "reference", progress=False)
    assert reference.stop_reason == "max_steps"

    rng = random.Random(4)
    run = tmp_path / "killed"
    kills, command = 0, [sys.executable, "-m", "charrnn", "train", str(corpus), "--out", str(run),
                         *_flags(SETTINGS), "--quiet"]
    while kills < 10:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENVIRONMENT)
        target = _saved_step(run) + rng.randint(1, 3)
        deadline = time.monotonic() + 90
        while _saved_step(run) < target and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.03))  # somewhere inside a step, an evaluation or a save
        process.kill()
        _, stderr = process.communicate(timeout=60)
        assert process.returncode in (-signal.SIGKILL, 0), stderr.decode()
        assert process.returncode == -signal.SIGKILL, "the run finished before ten kills: raise max_steps"
        kills += 1
        assert load_model(run / "checkpoints" / "latest").config.hidden_size == 8  # always whole
        command = [sys.executable, "-m", "charrnn", "train", "--out", str(run), "--resume", "--quiet"]
    finished = subprocess.run(command, capture_output=True, text=True, env=ENVIRONMENT, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.startswith(f"finished after {SETTINGS['max_steps']} steps")

    expected = load_tensors(tmp_path / "reference" / "checkpoints" / "latest" / "model.safetensors")
    found = load_tensors(run / "checkpoints" / "latest" / "model.safetensors")
    assert expected.keys() == found.keys()
    for name in expected:
        assert torch.equal(expected[name], found[name]), name  # bitwise
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, SETTINGS["max_steps"] + 1))  # each step logged once
    assert not [path for path in run.rglob("*") if ".tmp" in path.name or path.name.endswith(".previous")]


def test_an_exploding_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "run"
    settings = {**SETTINGS, "learning_rate": 1e4, "warmup_steps": 0, "grad_clip": 0, "max_steps": 50}
    process = subprocess.run([sys.executable, "-m", "charrnn", "train", str(corpus), "--out", str(out),
                              *_flags(settings), "--quiet"], capture_output=True, text=True, env=ENVIRONMENT,
                             timeout=120)
    assert process.returncode == 1, process.stderr
    line = process.stderr.strip()
    match = re.fullmatch(r"charrnn: error: training stopped at step (\d+): the (training loss|gradient norm) is "
                         r"\S+.*; the last good checkpoint is (\S+)", line)
    assert match, line
    stopped_at = int(match.group(1))
    assert Path(match.group(3)) == out / "checkpoints" / "latest"
    saved = json.loads((out / "checkpoints" / "latest" / "trainer.json").read_text())
    assert saved["step"] == stopped_at - 1  # the step before the one that blew up
    loaded = load_model(out)  # finite weights: the loader refuses NaN and infinity
    assert all(bool(torch.isfinite(tensor).all()) for tensor in loaded.model.state_dict().values())


def _resident_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads the resident size from /proc")
def test_memory_stays_flat_over_thousands_of_steps(tmp_path):
    """No growth from the carried state, the metrics or the logs: the resident size and the number
    of live Python objects at step 500 and at step 2500 agree within a small tolerance."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    settings = TrainConfig(hidden_size=8, embedding_size=4, sequence_length=4, batch_size=2, eval_every=500,
                           log_every=1, eval_characters=32, max_steps=2500, num_threads=1, device="cpu")
    seen = {}

    def measure(trainer):
        if trainer.step in (500, 2500):
            gc.collect()
            seen[trainer.step] = (_resident_bytes(), len(gc.get_objects()))

    result = train(settings, [corpus], tmp_path / "run", progress=False, callback=measure)
    assert result.step == 2500
    (rss_early, objects_early), (rss_late, objects_late) = seen[500], seen[2500]
    assert rss_late - rss_early < 8 * 2 ** 20, (rss_early, rss_late)
    assert objects_late - objects_early < 2000, (objects_early, objects_late)
