"""Every lecture example reaches the lecture's outcome, from the library and the command line."""

import subprocess
import sys

import pytest

from charrnn.cli import main
from charrnn.lecture import (LECTURE_KFOLD_TEST, LONG_SENTENCE, EXAMPLES, LectureOptions,
                             stratified_splits)


def run(name, **options):
    lines = []
    result = EXAMPLES[name](LectureOptions(**options), lines.append)
    return result, lines


def test_cell_unroll_and_batch_shapes():
    assert run("cell")[0].passed
    assert run("unroll")[0].details["outputs"].shape == (1, 5, 2)
    assert run("batch")[0].details["outputs"].shape == (3, 5, 2)
    assert run("batch", cell="lstm")[0].details["outputs"].shape == (3, 5, 2)


def test_hihello_predicts_ihello_with_the_lstm_outputs_as_logits():
    result, lines = run("hihello", every=500)
    assert result.details["prediction"] == "ihello"
    assert 0.433 < result.details["loss"] < 0.8  # the (-1, 1) output range bounds it below
    assert lines[0].startswith("0 loss: ")


def test_hihello_with_a_dense_layer_reaches_the_lecture_loss():
    result, _ = run("hihello", dense=True)
    assert result.details["prediction"] == "ihello" and result.details["loss"] < 1e-3


def test_long_sequence_predicts_the_sentence():
    result, _ = run("long-sequence")
    assert result.details["prediction"] == "if you want you"


@pytest.mark.parametrize("optimizer", ["tf-adam", "adam"])
def test_long_sentence_reconstructs_all_but_the_first_character(optimizer):
    result, _ = run("long-sentence", optimizer=optimizer)
    text = result.details["prediction"]
    assert text[1:] == LONG_SENTENCE[2:] and len(text) == len(LONG_SENTENCE) - 1


def test_stratified_splits_today_and_as_the_lecture_printed():
    today = stratified_splits("current")
    assert [test for _, test in today["kfold"][1]] == [[2, 5, 7], [1, 4, 6], [0, 3, 8]]
    lecture = stratified_splits("sklearn-0.19")
    assert [test for _, test in lecture["kfold"][1]] == LECTURE_KFOLD_TEST
    assert [train for train, _ in lecture["kfold"][1]] == [[0, 1, 3, 4, 6, 7], [0, 2, 3, 5, 7, 8],
                                                           [1, 2, 4, 5, 6, 8]]
    assert today["shuffle_split"][1][1] == ([8, 6, 5, 7, 1, 0], [3, 2, 4])
    assert today["train_test_split"] == ([1, 5, 4, 2, 7, 6], [3, 8, 0])
    assert run("stratified", kfold="sklearn-0.19")[0].passed


def test_command_line_runs_every_example_with_verdicts(capsys):
    assert main(["lecture"]) == 0
    output = capsys.readouterr().out
    for name in EXAMPLES:
        assert f"verdict: {name}: PASS" in output
    assert "7 of 7 examples reached the lecture's outcome" in output


def test_command_line_options_and_bad_names(capsys):
    assert main(["lecture", "hihello", "--dense", "--every", "1000", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "0 loss:" in out and "1000 loss:" in out and "verdict: hihello: PASS" in out
    assert main(["lecture", "nope"]) == 2
    assert "charrnn: error: unknown example 'nope'" in capsys.readouterr().err


def test_python_dash_m_and_failure_exit_status():
    completed = subprocess.run([sys.executable, "-m", "charrnn", "lecture", "hihello", "--iterations", "3"],
                               capture_output=True, text=True)
    # Three iterations cannot learn it: the verdict says so and the exit status is 1.
    assert completed.returncode == 1, completed.stderr
    assert "verdict: hihello: FAIL" in completed.stdout
