"""What char-rnn, textgenrnn and nanoGPT users reach for on day one, from the command line:
fine-tuning (``--init-from``), samples while training (``--sample-every``), checkpoint history
(``--keep``), early stopping (``--early-stop``) and the evaluation cadence of short runs.
"""

import json
import math
import random

import pytest
import torch

from charrnn.checkpoint import load_model
from charrnn.training.reporting import MetricsLog
from charrnn.training.settings import default_eval_every
from conftest import run_cli

WORDS = "the quick brown fox jumps over a lazy dog and then it sleeps".split()
#: Small and quick: every run below takes a second or two on one thread.
SHAPE = ["--hidden-size", "48", "--embedding-size", "16", "--batch-size", "8", "--sequence-length", "32",
         "--num-layers", "2", "--threads", "1", "--quiet"]


def _lines(seed: int, count: int, words: int, suffix: str = "") -> str:
    chooser = random.Random(seed)
    return "".join(" ".join(chooser.choice(WORDS) for _ in range(words)) + suffix + "\n" for _ in range(count))


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    """Text A (plain word lines) and text B (shorter lines, each ending in ' ü!': two new characters)."""
    folder = tmp_path_factory.mktemp("texts")
    (folder / "a.txt").write_text(_lines(0, 500, 8), encoding="utf-8")
    (folder / "b.txt").write_text(_lines(1, 200, 5, " ü!"), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def run_a(texts, tmp_path_factory):
    """A model trained on text A, with the history of its last two evaluations kept."""
    out = tmp_path_factory.mktemp("run_a") / "a"
    code = _cli("train", texts / "a.txt", "--out", out, "--max-steps", "150", "--eval-every", "25",
                "--keep", "2", *SHAPE)
    assert code == 0
    return out


def _cli(*argv):
    from charrnn.cli import main

    try:
        return main([str(arg) for arg in argv])
    except SystemExit as exit_info:
        return exit_info.code


def _val_losses(run) -> list[float]:
    return [record["val_loss"] for record in MetricsLog(run / "metrics.jsonl").read() if "val_loss" in record]


# -- fine-tuning -----------------------------------------------------------------------------------
def test_fine_tuning_beats_training_from_scratch_and_learns_the_new_characters(texts, run_a, tmp_path, capsys):
    steps = ["--max-steps", "60", "--eval-every", "60", "--warmup-steps", "10"]
    code, _, err = run_cli(capsys, "train", texts / "b.txt", "--out", tmp_path / "tuned", "--init-from", run_a,
                           *steps, *SHAPE[4:])  # the shape comes from the checkpoint
    assert code == 0, err
    code, _, err = run_cli(capsys, "train", texts / "b.txt", "--out", tmp_path / "scratch", *steps, *SHAPE)
    assert code == 0, err
    tuned, scratch = _val_losses(tmp_path / "tuned")[-1], _val_losses(tmp_path / "scratch")[-1]
    assert tuned < scratch - 0.5, (tuned, scratch)

    # The vocabulary is A's extended by B's new characters; the shape is A's.
    loaded, source = load_model(tmp_path / "tuned"), load_model(run_a)
    assert set(loaded.vocabulary.characters) == set(source.vocabulary.characters) | {"ü", "!"}
    assert (loaded.config.hidden_size, loaded.config.embedding_size) == (48, 16)
    config = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert config["training"]["init_from"] == str(run_a)

    # The new characters are learned: after "ü" the model expects "!", far above a uniform guess.
    ids = torch.tensor([loaded.vocabulary.encode("the lazy dog ü").tolist()])
    with torch.no_grad():
        probabilities = loaded.model(ids)[0][0, -1].softmax(-1)
    assert probabilities[loaded.vocabulary.index["!"]] > 0.5


def test_old_characters_keep_their_rows_under_new_ids(texts, run_a, tmp_path, capsys):
    """With no step taken, the fine-tuned model predicts A's text exactly as A's model did."""
    code, _, err = run_cli(capsys, "train", texts / "b.txt", "--out", tmp_path / "tuned", "--init-from", run_a,
                           "--max-steps", "1", "--learning-rate", "1e-9", "--warmup-steps", "0", *SHAPE[8:])
    assert code == 0, err
    tuned, source = load_model(tmp_path / "tuned" / "checkpoints" / "latest"), load_model(run_a)
    text = "the quick brown fox"
    with torch.no_grad():
        old = source.model(torch.tensor([source.vocabulary.encode(text).tolist()]))[0].log_softmax(-1)[0]
        new = tuned.model(torch.tensor([tuned.vocabulary.encode(text).tolist()]))[0].log_softmax(-1)[0]
    columns = [tuned.vocabulary.index[char] for char in source.vocabulary.characters]
    # The new characters take a little probability; the old ones keep their order and ratios.
    shift = (old - new[:, columns]).mean(dim=1, keepdim=True)
    assert torch.allclose(old, new[:, columns] + shift, atol=1e-3)
    assert (new[:, tuned.vocabulary.index["ü"]] < -math.log(tuned.vocabulary.size)).all()  # below a uniform guess


def test_fine_tuning_the_pretrained_model_by_name(texts, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", texts / "b.txt", "--out", tmp_path / "tuned", "--init-from",
                           "shakespeare", "--max-steps", "2", "--batch-size", "2", "--sequence-length", "16",
                           "--eval-characters", "64", "--threads", "1")
    assert code == 0, err
    assert "fine-tuning" in err and "new characters: 'ü'" in err
    assert load_model(tmp_path / "tuned").config.hidden_size == 256


def test_a_changed_shape_is_refused_in_one_line_and_leaves_nothing(texts, run_a, tmp_path, capsys):
    out = tmp_path / "tuned"
    code, _, err = run_cli(capsys, "train", texts / "b.txt", "--out", out, "--init-from", run_a,
                           "--hidden-size", "64", "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--init-from" in err and "--hidden-size 48" in err and "keeps its shape" in err
    assert not out.exists()
    code, _, err = run_cli(capsys, "train", texts / "b.txt", "--out", out, "--init-from", tmp_path / "nowhere")
    assert code == 2 and err.startswith("charrnn: error: --init-from: ") and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_fine_tuned_model_keeps_its_forget_bias_over_a_presets(run_a):
    from charrnn.training import resolve_settings
    from charrnn.training.settings import PRESETS

    assert PRESETS["cpu-15min"]["forget_bias"] == 1.0
    shape = {"init_from": str(run_a), "hidden_size": 48, "embedding_size": 16, "tie_weights": False}
    assert resolve_settings(shape, preset="cpu-15min").forget_bias == 0.0
    assert resolve_settings({**shape, "forget_bias": 0.5}, preset="cpu-15min").forget_bias == 0.5


def test_resume_keeps_its_meaning_and_refuses_another_init_from(texts, run_a, tmp_path, capsys):
    out = tmp_path / "tuned"
    assert run_cli(capsys, "train", texts / "b.txt", "--out", out, "--init-from", run_a, "--max-steps", "10",
                   "--quiet", *SHAPE[8:])[0] == 0
    code, _, err = run_cli(capsys, "train", "--out", out, "--resume", "--max-steps", "12", "--quiet", *SHAPE[8:])
    assert code == 0, err
    code, _, err = run_cli(capsys, "train", "--out", out, "--resume", "--init-from", "shakespeare")
    assert code == 2 and "--init-from" in err and "cannot change" in err


# -- samples while training ----------------------------------------------------------------------
def test_samples_every_n_steps_are_printed_and_logged_without_changing_the_run(texts, tmp_path, capsys):
    common = [texts / "a.txt", "--max-steps", "60", "--eval-every", "30", *SHAPE[:-1]]
    code, _, err = run_cli(capsys, "train", *common, "--out", tmp_path / "watched", "--sample-every", "20",
                           "--sample-length", "40", "--sample-prime", "the ", "--sample-temperature", "0.5")
    assert code == 0, err
    assert err.count("--- sample at step") == 3 and "--- sample at step 60 (temperature 0.5) ---\nthe " in err
    samples = MetricsLog(tmp_path / "watched" / "samples.jsonl").read()
    assert [record["step"] for record in samples] == [20, 40, 60]
    assert all(len(record["text"]) == 40 and record["prime"] == "the " for record in samples)
    assert samples[0]["val_loss"] is None and samples[2]["val_loss"] == pytest.approx(_val_losses(tmp_path / "watched")[-1])

    # Watching a run never changes what it computes.
    assert run_cli(capsys, "train", *common, "--out", tmp_path / "plain")[0] == 0
    assert _val_losses(tmp_path / "watched") == _val_losses(tmp_path / "plain")


def test_a_resumed_run_draws_the_same_samples(texts, tmp_path, capsys):
    from charrnn.training import train

    settings = {"hidden_size": 48, "embedding_size": 16, "batch_size": 8, "sequence_length": 32, "num_threads": 1,
                "max_steps": 60, "eval_every": 20, "sample_every": 20, "sample_length": 30, "device": "cpu"}
    train(settings, [texts / "a.txt"], tmp_path / "whole", progress=False)
    stopped = train(settings, [texts / "a.txt"], tmp_path / "parts", progress=False,
                    callback=lambda trainer: trainer.request_stop() if trainer.step == 30 else None)
    assert (stopped.stop_reason, stopped.step) == ("interrupted", 31)  # asked during step 30: stops after 31
    assert train(None, (), tmp_path / "parts", resume=True, progress=False).step == 60
    read = [MetricsLog(tmp_path / name / "samples.jsonl").read() for name in ("whole", "parts")]
    assert [record["step"] for record in read[1]] == [20, 40, 60]
    assert [record["text"] for record in read[0]] == [record["text"] for record in read[1]]


def test_a_sample_prime_outside_the_corpus_is_refused(texts, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", texts / "a.txt", "--out", tmp_path / "run", "--sample-every", "5",
                           "--sample-prime", "Zürich", *SHAPE)
    assert code == 2 and "--sample-prime" in err and "'Z'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


# -- checkpoint history and early stopping -------------------------------------------------------
def test_keep_holds_the_last_n_evaluations_named_by_step_and_loss(run_a, capsys):
    history = sorted(path.name for path in (run_a / "checkpoints").iterdir() if path.name.startswith("step-"))
    losses = _val_losses(run_a)
    assert history == [f"step-{step:06d}-loss-{loss:.4f}" for step, loss in zip((125, 150), losses[-2:])]
    assert not [path for path in (run_a / "checkpoints").iterdir() if path.name.startswith(".")]
    code, out, err = run_cli(capsys, "sample", run_a / "checkpoints" / history[0], "--length", "20", "--seed", "1")
    assert code == 0 and len(out.rstrip("\n")) >= 20
    assert f"(step 125, validation loss {losses[-2]:.4f})" in err


def test_early_stop_ends_a_run_that_stopped_improving(tmp_path, capsys):
    # Training text: a strict cycle; validation text: other orders of the same letters. The
    # more the model learns the cycle, the worse it does on the rest.
    chooser = random.Random(0)
    validation = "".join(chooser.choice("abcd") for _ in range(1200))
    (tmp_path / "t.txt").write_text("abcd" * 2700 + validation, encoding="utf-8")
    code, out, err = run_cli(capsys, "train", tmp_path / "t.txt", "--out", tmp_path / "run", "--max-steps", "400",
                             "--eval-every", "5", "--early-stop", "3", "--learning-rate", "2e-2",
                             "--decay", "constant", "--warmup-steps", "0", *SHAPE)
    assert code == 0, err
    losses = _val_losses(tmp_path / "run")
    best = min(range(len(losses)), key=losses.__getitem__)
    assert len(losses) == best + 4  # the best, then three evaluations without a new best
    assert all(loss >= losses[best] for loss in losses[best:])
    assert out.startswith(f"stopped early at step {5 * len(losses)}")
    assert f"best {losses[best]:.4f} at step {5 * (best + 1)}" in out
    assert len(losses) * 5 < 400


# -- the evaluation cadence of short runs --------------------------------------------------------
def test_eval_every_defaults_to_several_evaluations_per_run():
    assert default_eval_every(900, 6) == 90  # the 900-step run: 10 evaluations, not 2
    assert default_eval_every(5000, 490) == 500
    assert default_eval_every(60, 1) == 25
    assert default_eval_every(None, 490) == 490  # limited by time: once an epoch
    assert default_eval_every(None, 5) == 25


def test_a_short_run_is_evaluated_several_times(texts, tmp_path, capsys):
    assert run_cli(capsys, "train", texts / "a.txt", "--out", tmp_path / "run", "--max-steps", "100", *SHAPE)[0] == 0
    steps = [record["step"] for record in MetricsLog(tmp_path / "run" / "metrics.jsonl").read() if "val_loss" in record]
    assert steps == [25, 50, 75, 100]


# -- bad values ----------------------------------------------------------------------------------
@pytest.mark.parametrize("flags, named", [
    (["--keep", "-1"], "--keep"),
    (["--early-stop", "0"], "--early-stop"),
    (["--sample-every", "0"], "--sample-every"),
    (["--sample-length", "0"], "--sample-length"),
    (["--sample-temperature", "0"], "--sample-temperature"),
    (["--sample-temperature", "warm"], "--sample-temperature"),
    (["--init-from", ""], "--init-from"),
])
def test_bad_values_are_one_line_errors(texts, tmp_path, capsys, flags, named):
    code, _, err = run_cli(capsys, "train", texts / "a.txt", "--out", tmp_path / "run", *flags)
    assert code == 2 and named in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()

