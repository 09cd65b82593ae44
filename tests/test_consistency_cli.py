"""Every command behaves the same way (issue 9): run folders, kinds of checkpoint, devices,
settings files, messages, and a library that leaves process-wide state alone."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch

from charrnn.cli import main
from charrnn.errors import SettingError
from charrnn.training import train
from charrnn.training.settings import TrainConfig, load_toml

LM = ["--hidden-size", "8", "--embedding-size", "4", "--sequence-length", "8", "--batch-size", "2",
      "--max-steps", "2", "--eval-every", "2", "--threads", "1", "--device", "cpu", "--quiet"]
CLASSIFIER = ["--epochs", "1", "--hidden-size", "4", "--embedding-size", "2", "--device", "cpu", "--quiet"]


def run(capsys, *argv):
    try:
        status = main([str(arg) for arg in argv])
    except SystemExit as stop:  # argparse's errors
        status = stop.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def texts(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog.\n" * 20, encoding="utf-8")
    names = tmp_path / "names"
    names.mkdir()
    (names / "a.txt").write_text("\n".join(f"k{'a' * n}a" for n in range(1, 13)) + "\n", encoding="utf-8")
    (names / "b.txt").write_text("\n".join(f"k{'b' * n}b" for n in range(1, 13)) + "\n", encoding="utf-8")
    return corpus, names


def files(folder):
    return {path.relative_to(folder): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


# -- run folders ----------------------------------------------------------------------------------
def test_classify_train_refuses_a_language_model_run_unless_told_to_overwrite(texts, tmp_path, capsys):
    corpus, names = texts
    out = tmp_path / "run"
    assert run(capsys, "train", corpus, "--out", out, *LM)[0] == 0
    before = files(out)
    status, _, err = run(capsys, "classify", "train", names, "--out", out, *CLASSIFIER)
    assert status == 2
    assert err == (f"charrnn: error: {out}: already holds a run (a language model); pass --overwrite to replace "
                   f"it or choose another --out\n")
    assert files(out) == before  # config.json and vocab.json untouched: sample and --resume still work
    assert run(capsys, "sample", out, "--length", "5", "--device", "cpu")[0] == 0
    status, _, _ = run(capsys, "classify", "train", names, "--out", out, *CLASSIFIER, "--overwrite")
    assert status == 0
    assert not (out / "checkpoints").exists() and not (out / "data").exists()
    assert json.loads((out / "config.json").read_text())["kind"] == "classifier"


def test_train_refuses_a_classifier_run_and_overwrite_replaces_it(texts, tmp_path, capsys):
    corpus, names = texts
    out = tmp_path / "run"
    assert run(capsys, "classify", "train", names, "--out", out, *CLASSIFIER)[0] == 0
    status, _, err = run(capsys, "train", corpus, "--out", out, *LM)
    assert status == 2 and "already holds a run (a classifier); pass --overwrite" in err
    assert run(capsys, "train", corpus, "--out", out, *LM, "--overwrite")[0] == 0
    assert not (out / "labels.json").exists() and not (out / "report.txt").exists()
    assert json.loads((out / "config.json").read_text())["kind"] == "language-model"


@pytest.mark.parametrize("flags, message", [
    (["--cv", "20"], "fewer than the 20 that 20-fold cross-validation needs"),
    (["--test-size", "1.5"], r"--test-size must be a number in (0.0, 1.0), got 1.5"),
    (["--device", "cuda:3"], "--device cuda:3: "),
])
def test_a_failed_classify_start_leaves_no_folder(texts, tmp_path, capsys, flags, message):
    _, names = texts
    out = tmp_path / "new"
    status, _, err = run(capsys, "classify", "train", names, "--out", out, *CLASSIFIER, *flags)
    assert status == 2 and message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_an_interrupted_classify_start_leaves_no_folder(texts, tmp_path):
    _, names = texts
    out = tmp_path / "new"
    process = subprocess.Popen([sys.executable, "-m", "charrnn", "classify", "train", str(names), "--out", str(out),
                                "--epochs", "100000", "--hidden-size", "4", "--embedding-size", "2", "--device", "cpu",
                                "--threads", "1"], stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.stderr.readline()  # the first progress line: training has started
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert not out.exists()


# -- kinds of checkpoint --------------------------------------------------------------------------
def test_the_wrong_kind_of_checkpoint_is_named_with_the_command_to_use(texts, tmp_path, capsys):
    corpus, names = texts
    lm, classifier = tmp_path / "lm", tmp_path / "classifier"
    assert run(capsys, "train", corpus, "--out", lm, *LM)[0] == 0
    assert run(capsys, "classify", "train", names, "--out", classifier, *CLASSIFIER)[0] == 0
    for command in (["sample", classifier], ["eval", classifier, corpus]):
        status, _, err = run(capsys, *command, "--device", "cpu")
        assert status == 2
        assert err == (f"charrnn: error: {classifier}: this is a classifier checkpoint, not a language-model one; "
                       f"use `charrnn classify predict`\n")
    status, _, err = run(capsys, "classify", "predict", lm, "kaa", "--device", "cpu")
    assert status == 2
    assert err == (f"charrnn: error: {lm / 'checkpoints' / 'best'}: this is a language-model checkpoint, not a "
                   f"classifier one; use `charrnn sample` or `charrnn eval`\n")


def test_a_classifier_saved_before_the_one_format_is_refused_in_one_line(tmp_path, capsys):
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"vocab_size": 3, "cell": "lstm", "hidden_size": 4, "num_layers": 1,
                                                 "embedding_size": 2, "dropout": 0.0, "forget_bias": 1.0,
                                                 "num_classes": 2}))
    (old / "labels.json").write_text(json.dumps({"labels": ["a", "b"]}))
    (old / "vocab.json").write_text(json.dumps({"characters": ["a", "b", "k"]}))
    (old / "model.safetensors").write_bytes(b"")
    for command in (["classify", "predict", old, "kaa"], ["sample", old]):
        status, _, err = run(capsys, *command, "--device", "cpu")
        assert status == 2 and err.count("\n") == 1
        assert "a classifier saved by charrnn 0.1" in err and "charrnn classify train" in err


# -- devices --------------------------------------------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="tells what happens on a machine without CUDA")
def test_every_command_says_the_same_about_a_missing_gpu(texts, tmp_path, capsys):
    corpus, names = texts
    lm = tmp_path / "lm"
    assert run(capsys, "train", corpus, "--out", lm, *LM)[0] == 0
    commands = [["train", corpus, "--out", tmp_path / "new", *LM], ["sample", lm], ["eval", lm, corpus],
                ["classify", "train", names, "--out", tmp_path / "new", *CLASSIFIER], ["classify", "predict", lm, "x"]]
    for device in ("cuda", "cuda:0"):
        for command in commands:
            status, _, err = run(capsys, *command, "--device", device)
            assert status == 2, command
            assert err.endswith(f"--device {device}: no CUDA device is available (try --device auto or cpu)\n"), err
    assert not (tmp_path / "new").exists()


def test_fp16_amp_on_a_cpu_is_refused_not_ignored(texts, tmp_path, capsys):
    corpus, _ = texts
    status, _, err = run(capsys, "train", corpus, "--out", tmp_path / "run", *LM, "--amp", "fp16")
    assert status == 2 and "--amp fp16 needs a CUDA device, and this run is on cpu; pass --amp bf16" in err
    assert not (tmp_path / "run").exists()


def test_every_command_defaults_to_the_same_device():
    from charrnn.cli import build_parser

    parser = build_parser()
    defaults = [parser.parse_args(argv).device for argv in
                (["sample", "x"], ["eval", "x", "y"], ["classify", "train", "x"], ["classify", "predict", "x", "t"])]
    assert defaults == ["auto"] * 4 and TrainConfig().device == "auto"


# -- settings files -------------------------------------------------------------------------------
def test_settings_file_keys_are_the_flag_names(tmp_path):
    file = tmp_path / "settings.toml"
    file.write_text('threads = 1\nhidden-size = 16\nmax_steps = 3\npreset = "cpu-15min"\n')
    assert load_toml(file) == {"num_threads": 1, "hidden_size": 16, "max_steps": 3, "preset": "cpu-15min"}
    file.write_text("hidden_size = 16\nhidden-size = 32\n")
    with pytest.raises(SettingError, match=r"'hidden-size' and 'hidden_size' set the same setting"):
        load_toml(file)
    file.write_text("num_thread = 2\n")
    with pytest.raises(SettingError, match=r"unknown setting 'num_thread'; known settings: .*\bpreset\b.*\bthreads\b"):
        load_toml(file)


# -- messages -------------------------------------------------------------------------------------
def test_messages(texts, tmp_path, capsys):
    corpus, names = texts
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    status, _, err = run(capsys, "train", empty, "--out", tmp_path / "run", *LM)
    assert status == 2 and err.endswith(f"the corpus is empty: {empty} holds no text\n")
    for command in (["sample", "x", "--bogus"], ["classify", "train", names, "--bogus"]):
        status, _, err = run(capsys, *command)
        name = " ".join(command[:-2] if command[0] == "classify" else command[:1])
        assert status == 2 and err == f"charrnn: error: {name}: unrecognized arguments: --bogus\n"


# -- process-wide state ---------------------------------------------------------------------------
def test_training_leaves_process_wide_state_as_it_found_it(texts, tmp_path):
    corpus, _ = texts
    torch.set_num_threads(1)
    np.random.seed(7)
    numpy_state = np.random.get_state()[1].copy()
    filters = list(warnings.filters)
    train(TrainConfig(hidden_size=8, embedding_size=4, sequence_length=8, batch_size=2, max_steps=2, eval_every=2,
                      num_threads=2, device="cpu"), [corpus], tmp_path / "run", progress=False)
    assert torch.get_num_threads() == 1
    assert np.array_equal(np.random.get_state()[1], numpy_state)
    assert warnings.filters == filters


def test_the_command_line_starts_without_the_heavy_libraries():
    """Building every command's parser loads neither SciPy, scikit-learn nor matplotlib (half a
    second or more each at every start): the commands that need them load them when they run."""
    code = ("import sys; from charrnn.cli import build_parser; build_parser(); "
            "print(sorted({name.split('.')[0] for name in sys.modules} & {'scipy', 'sklearn', 'matplotlib'}))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
