"""The trainer: run directory, exact resume, signals, divergence, limits, schedule, settings."""

import json
import math
import os
import random
import signal

import pytest
import torch

from charrnn.checkpoint import load_model
from charrnn.classification import TrainingOptions
from charrnn.training.run_directory import lock_run_directory
from charrnn.errors import CharRNNError
from charrnn.files import load_tensors
from charrnn.training.reporting import MetricsLog
from charrnn.training import train
from charrnn.training.settings import PRESETS, TrainConfig, resolve_resume, resolve_settings

TINY = dict(hidden_size=24, embedding_size=8, num_layers=2, sequence_length=16, batch_size=8,
            eval_every=5, log_every=1, eval_characters=0, num_threads=1, warmup_steps=3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """About 2,600 characters: 18 batches of 8 x 16 per epoch, so 20 steps cross an epoch."""
    rng = random.Random(0)
    words = "the cat sat on a mat while a dog ran after the red ball".split()
    text = "\n".join(" ".join(rng.choice(words) for _ in range(8)) for _ in range(80))
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text(text, encoding="utf-8")
    return path


def settings(**changes):
    return TrainConfig(**{**TINY, **changes})


def test_run_directory_holds_every_file(corpus, tmp_path):
    result = train(settings(max_steps=10), [corpus], tmp_path / "run", progress=False)
    run = tmp_path / "run"
    assert result.stop_reason == "max_steps" and result.exit_code == 0 and result.step == 10
    for name in ("config.json", "vocab.json", "metrics.jsonl", "loss.png", "data/corpus.bin",
                 "checkpoints/latest/model.safetensors", "checkpoints/latest/optimizer.safetensors",
                 "checkpoints/latest/trainer.json", "checkpoints/latest/trainer.safetensors",
                 "checkpoints/best/model.safetensors"):
        assert (run / name).is_file(), name
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["hidden_size"] == 24 and config["training"]["max_steps"] == 10
    assert config["model"]["forget_bias"] == 0.0  # the trainer's choice, not TensorFlow's 1.0
    records = MetricsLog(run / "metrics.jsonl").read()
    assert [r["step"] for r in records] == list(range(1, 11))
    assert {"train_loss", "learning_rate", "characters_per_second", "elapsed"} <= set(records[0])
    assert [r["step"] for r in records if "val_loss" in r] == [5, 10]
    # Learning happened, and the best checkpoint is the one with the lowest validation loss.
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    assert result.best_val_loss == min(r["val_loss"] for r in records if "val_loss" in r)
    loaded = load_model(run)
    assert loaded.path == run / "checkpoints" / "best" and loaded.config.vocab_size == loaded.vocabulary.size


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(corpus, tmp_path):
    config = settings(max_steps=20, dropout=0.1)  # dropout: the generators must be restored too

    straight = train(config, [corpus], tmp_path / "straight", progress=False)

    def interrupt_after_step_6(trainer):
        if trainer.step == 6:
            # The real handler path. Arriving between steps, it is seen at the end of the next
            # one: step 7, mid-epoch and between evaluations.
            os.kill(os.getpid(), signal.SIGINT)

    first = train(config, [corpus], tmp_path / "resumed", progress=False, callback=interrupt_after_step_6)
    assert first.stop_reason == "interrupted" and first.exit_code == 130 and first.step == 7
    assert "checkpoint saved" in first.message
    second = train(None, [], tmp_path / "resumed", resume=True, progress=False)
    assert second.stop_reason == "max_steps" and second.step == 20

    def numbers(run):
        return [(r["step"], r.get("train_loss"), r.get("val_loss"), r["learning_rate"])
                for r in MetricsLog(run / "metrics.jsonl").read()]

    assert numbers(tmp_path / "resumed") == numbers(tmp_path / "straight")
    weights = [load_tensors(tmp_path / run / "checkpoints/latest/model.safetensors") for run in ("straight", "resumed")]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
    assert straight.best_val_loss == second.best_val_loss


def test_sigterm_saves_and_reports_143(corpus, tmp_path):
    def terminate(trainer):
        if trainer.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # seen at the end of the next step

    result = train(settings(max_steps=50), [corpus], tmp_path / "run", progress=False, callback=terminate)
    assert (result.stop_reason, result.exit_code, result.step) == ("terminated", 143, 3)
    trainer_state = json.loads((tmp_path / "run/checkpoints/latest/trainer.json").read_text())
    assert trainer_state["step"] == 3


def test_nan_stops_cleanly_and_keeps_the_last_good_checkpoint(corpus, tmp_path):
    def poison(trainer):
        if trainer.step == 7:
            with torch.no_grad():
                trainer.model.head.weight.fill_(float("nan"))

    result = train(settings(max_steps=50), [corpus], tmp_path / "run", progress=False, callback=poison)
    assert result.stop_reason == "diverged" and result.exit_code == 1
    assert "training loss is nan" in result.message and "last good checkpoint" in result.message
    assert json.loads((tmp_path / "run/checkpoints/latest/trainer.json").read_text())["step"] == 5
    loaded = load_model(tmp_path / "run" / "checkpoints" / "latest")  # whole and finite
    assert all(torch.isfinite(p).all() for p in loaded.model.parameters())
    assert (tmp_path / "run" / "loss.png").exists()


def test_a_run_that_starts_above_three_uniform_guesses_trains_and_an_explosion_still_stops_it(corpus, tmp_path):
    # A tied embedding 256 wide with a forget bias of 3 starts above 3 x ln V: that first loss
    # is the starting model's, not a divergence (a fixed limit of 3 x ln V stopped it at step 1).
    wide = dict(hidden_size=256, embedding_size=256, num_layers=1, tie_weights=True, forget_bias=3.0, max_steps=8)
    result = train(settings(**wide), [corpus], tmp_path / "sound", progress=False)
    losses = [row["train_loss"] for row in MetricsLog(tmp_path / "sound" / "metrics.jsonl").read()
              if "train_loss" in row]
    assert losses[0] > 3 * math.log(len(set(corpus.read_text(encoding="utf-8"))))
    assert (result.stop_reason, result.step) == ("max_steps", 8) and losses[-1] < losses[0]

    def explode(trainer):
        if trainer.step == 3:
            with torch.no_grad():
                trainer.model.head.weight.mul_(1e3)

    result = train(settings(**wide), [corpus], tmp_path / "exploded", progress=False, callback=explode)
    assert (result.stop_reason, result.exit_code, result.step) == ("diverged", 1, 3)
    assert "x the first step's loss, whichever is higher" in result.message


def test_epochs_and_time_limits(corpus, tmp_path):
    result = train(settings(epochs=1, eval_every=100), [corpus], tmp_path / "epoch", progress=False)
    train_characters = int(len(corpus.read_text()) * 0.9)
    steps_per_epoch = (train_characters - 1) // TINY["batch_size"] // TINY["sequence_length"]
    assert result.stop_reason == "epochs" and result.step == steps_per_epoch
    assert json.loads((tmp_path / "epoch/checkpoints/latest/trainer.json").read_text())["data"]["epoch"] == 1
    result = train(settings(max_time=0.5, eval_every=1000, log_every=1000), [corpus], tmp_path / "time",
                   progress=False)
    assert result.stop_reason == "max_time" and result.step >= 1 and result.val_loss is not None


def test_resume_refuses_contradicting_settings_unless_overridden(corpus, tmp_path):
    run = tmp_path / "run"
    train(settings(max_steps=6), [corpus], run, progress=False)
    with pytest.raises(CharRNNError, match=r"--learning-rate 0.02 contradicts the saved run .* --override"):
        train({"learning_rate": 0.02}, [], run, resume=True, progress=False)
    with pytest.raises(CharRNNError, match=r"--hidden-size 32 contradicts .* cannot change"):
        train({"hidden_size": 32}, [], run, resume=True, override=True, progress=False)
    with pytest.raises(CharRNNError, match="corpus differs"):
        train(None, [tmp_path], run, resume=True, progress=False)
    # Free to change: how long. With --override: the batch size, the streams starting over.
    assert train({"max_steps": 8}, [], run, resume=True, progress=False).step == 8
    result = train({"max_steps": 10, "batch_size": 4}, [], run, resume=True, override=True, progress=False)
    assert result.step == 10
    assert json.loads((run / "config.json").read_text())["training"]["batch_size"] == 4


def test_new_run_refuses_a_used_folder_and_cleans_up_a_failed_start(corpus, tmp_path):
    run = tmp_path / "run"
    train(settings(max_steps=2), [corpus], run, progress=False)
    with pytest.raises(CharRNNError, match="already holds a run; pass --resume"):
        train(settings(max_steps=2), [corpus], run, progress=False)
    assert (run / "checkpoints" / "latest").is_dir()  # untouched
    with pytest.raises(CharRNNError, match="no run to resume"):
        train(None, [], tmp_path / "absent", resume=True, progress=False)
    short = tmp_path / "short.txt"
    short.write_text("abcabc")
    with pytest.raises(CharRNNError, match="sequence-length"):
        train(settings(), [short], tmp_path / "failed", progress=False)
    assert not (tmp_path / "failed").exists()


def test_a_locked_run_folder_is_refused(corpus, tmp_path):
    with lock_run_directory(tmp_path / "run"):
        with pytest.raises(CharRNNError, match=r"in use by another charrnn process \(pid \d+\)"):
            train(settings(max_steps=2), [corpus], tmp_path / "run", progress=False)


def test_learning_rate_schedule():
    config = TrainConfig(learning_rate=1e-2, warmup_steps=10, decay="cosine")
    assert config.schedule.rate(0, 0.0) == pytest.approx(1e-3)
    assert config.schedule.rate(9, 0.0) == pytest.approx(1e-2)
    # The language model decays to a hundredth by default, the classifier to a tenth.
    assert config.schedule.rate(50, 0.5) == pytest.approx(1e-4 + 9.9e-3 * 0.5)
    assert config.schedule.rate(99, 1.0) == pytest.approx(1e-4)
    assert TrainingOptions(learning_rate=1e-2, warmup_steps=0).schedule.rate(99, 1.0) == pytest.approx(1e-3)
    linear = TrainConfig(learning_rate=1e-2, warmup_steps=0, decay="linear", min_learning_rate=0.0)
    assert linear.schedule.rate(5, 0.25) == pytest.approx(7.5e-3)
    constant = TrainConfig(learning_rate=1e-2, warmup_steps=0, decay="constant")
    assert constant.schedule.rate(5, 0.9) == 1e-2


@pytest.mark.parametrize("changes, message", [
    ({"hidden_size": 0}, "--hidden-size must be a positive integer, got 0"),
    ({"dropout": 1.0}, r"--dropout must be a number in \[0.0, 1.0\), got 1.0"),
    ({"val_fraction": 0.0}, r"--val-fraction must be a number in \(0.0, 1.0\)"),
    ({"cell": "transformer"}, "--cell must be one of gru, gru-reset-after, lstm, rnn"),
    ({"learning_rate": -1}, "--learning-rate must be a number"),
    ({"device": "tpu"}, "--device must be one of auto, cpu, cuda, mps"),
    ({"max_time": math.inf}, "--max-time must be a number"),
    ({"nonsense": 1}, "unknown setting"),
])
def test_settings_are_checked(changes, message):
    with pytest.raises(CharRNNError, match=message):
        TrainConfig.from_dict(changes)


def test_settings_layers_and_toml(tmp_path):
    file = tmp_path / "settings.toml"
    file.write_text('preset = "cpu-15min"\nhidden-size = 128\nlearning_rate = 0.001\n')
    config = resolve_settings({"learning_rate": 0.002}, config_file=file)
    preset = PRESETS["cpu-15min"]
    assert (config.hidden_size, config.learning_rate, config.dropout, config.max_time) == (
        128, 0.002, preset["dropout"], preset["max_time"])
    file.write_text("hidden_size = -3\n")
    with pytest.raises(CharRNNError, match=r"settings.toml: --hidden-size must be a positive integer"):
        resolve_settings(config_file=file)
    file.write_text("hidden_size = [\n")
    with pytest.raises(CharRNNError, match="settings.toml: not valid TOML"):
        resolve_settings(config_file=file)
    with pytest.raises(CharRNNError, match="config file not found"):
        resolve_settings(config_file=tmp_path / "absent.toml")
    saved = TrainConfig()
    assert resolve_resume(saved, {"max_steps": 9, "device": "cpu"}, False, "x").max_steps == 9
