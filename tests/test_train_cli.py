"""``charrnn train`` at the command level: files, resume, signals and one-line errors."""

import json
import random
import re
import signal
import subprocess
import sys
import time

import pytest

from charrnn.cli import main

SMALL = ["--hidden-size", "16", "--embedding-size", "8", "--sequence-length", "16", "--batch-size", "4",
         "--eval-every", "4", "--log-every", "2", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = random.Random(1)
    words = "to be or not that is the question whether tis nobler in the mind".split()
    folder = tmp_path_factory.mktemp("texts")
    for index in range(2):  # a folder of several files
        text = "\n".join(" ".join(rng.choice(words) for _ in range(9)) for _ in range(40))
        (folder / f"part{index}.txt").write_text(text, encoding="utf-8")
    return folder


def run_cli(args, capsys):
    try:
        code = main(["train", *args])
    except SystemExit as exit:  # argparse's errors
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_then_resume(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, stderr = run_cli([str(corpus), "--out", str(out), "--max-steps", "6", *SMALL], capsys)
    assert code == 0, stderr
    assert stdout.startswith("finished after 6 steps") and str(out) in stdout
    assert (out / "checkpoints" / "best" / "model.safetensors").is_file() and (out / "loss.png").is_file()
    assert json.loads((out / "config.json").read_text())["corpus"]["paths"][0].endswith("part0.txt")

    code, stdout, stderr = run_cli(["--out", str(out), "--resume", "--max-steps", "10", "--quiet"], capsys)
    assert code == 0, stderr
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 8, 10]


def test_config_file_and_flags(corpus, tmp_path, capsys):
    config = tmp_path / "settings.toml"
    config.write_text("hidden-size = 12\nmax_steps = 2\nlearning_rate = 0.01\n")
    out = tmp_path / "run"
    code, _, stderr = run_cli([str(corpus), "--out", str(out), "--config", str(config), *SMALL[2:],
                               "--learning-rate", "0.02"], capsys)
    assert code == 0, stderr
    training = json.loads((out / "config.json").read_text())["training"]
    assert (training["hidden_size"], training["max_steps"], training["learning_rate"]) == (12, 2, 0.02)


@pytest.mark.parametrize("args, message", [
    (["--dropout", "1.5"], r"--dropout must be a number in \[0.0, 1.0\), got 1.5"),
    (["--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
    (["--val-fraction", "1"], r"--val-fraction must be a number in \(0.0, 1.0\)"),
    (["--cell", "tcn"], "--cell must be one of"),
    (["--hidden-size", "many"], "argument --hidden-size: invalid int value: 'many'"),
    (["--sequence-length", "100000"], "the training split .* fewer than sequence-length"),
    (["--config", "absent.toml"], "absent.toml: config file not found"),
    (["--override"], "--override only applies with --resume"),
])
def test_bad_values_give_one_line_and_status_2(corpus, tmp_path, capsys, args, message):
    out = tmp_path / "run"
    code, _, stderr = run_cli([str(corpus), "--out", str(out), *SMALL, *args], capsys)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("charrnn: error: ")
    assert re.search(message, lines[0]), lines[0]
    assert not out.exists()  # nothing left behind


def test_missing_corpus_and_contradicting_resume(corpus, tmp_path, capsys):
    code, _, stderr = run_cli([str(tmp_path / "nope.txt"), "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and stderr.strip() == f"charrnn: error: {tmp_path / 'nope.txt'}: no such file or folder"
    out = tmp_path / "run"
    assert run_cli([str(corpus), "--out", str(out), "--max-steps", "2", *SMALL], capsys)[0] == 0
    code, _, stderr = run_cli([str(corpus), "--out", str(out), "--max-steps", "2", *SMALL], capsys)
    assert code == 2 and "already holds a run; pass --resume" in stderr
    code, _, stderr = run_cli(["--out", str(out), "--resume", "--batch-size", "2"], capsys)
    assert code == 2 and "--batch-size 2 contradicts the saved run" in stderr and "--override" in stderr


def test_ctrl_c_saves_a_checkpoint_and_resume_continues(corpus, tmp_path):
    """A real SIGINT from outside (SIGTERM takes the same path; test_trainer sends both)."""
    signal_number, status = signal.SIGINT, 130
    out = tmp_path / "run"
    command = [sys.executable, "-m", "charrnn", "train", str(corpus), "--out", str(out), "--max-steps",
               "100000", "--eval-every", "1000000", *SMALL[:-5], "--log-every", "1", "--threads", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "metrics.jsonl").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal_number)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == status, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("charrnn: SIGINT: stopped at step ") and "checkpoint saved to" in last
    saved_step = json.loads((out / "checkpoints/latest/trainer.json").read_text())["step"]
    assert saved_step >= 1
    assert main(["train", "--out", str(out), "--resume", "--max-steps", str(saved_step + 2), "--quiet"]) == 0
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, saved_step + 3))
