"""Short runs (issue 12): the warm-up fits the run, and a run too short to learn says so."""

import pytest

from charrnn.training import TrainConfig
from conftest import SAMPLE_TEXT, run_cli

TINY = ["--hidden-size", "16", "--embedding-size", "8", "--batch-size", "4", "--sequence-length", "16",
        "--threads", "1"]


def test_the_default_warm_up_ends_within_the_first_twentieth_of_a_short_run():
    schedule = TrainConfig(learning_rate=1e-2, decay="constant").schedule
    assert schedule.rate(0, 0.0) == pytest.approx(1e-4)  # 100 steps of warm-up, step-wise, at the start
    assert schedule.rate(1, 2 / 20) == pytest.approx(1e-2)  # a 20-step run is at its peak by its second step
    assert schedule.rate(49, 50 / 5000) == pytest.approx(0.5e-2)  # a 5000-step run warms up over 100 steps
    explicit = TrainConfig(learning_rate=1e-2, decay="constant", warmup_steps=100).schedule
    assert explicit.rate(1, 2 / 20) == pytest.approx(2e-4)  # asked for: kept as it is


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(SAMPLE_TEXT, encoding="utf-8")
    return path


def test_a_time_limit_too_short_to_learn_is_said_early(corpus, tmp_path, capsys):
    corpus.write_text(SAMPLE_TEXT * 10, encoding="utf-8")
    code, _, err = run_cli(capsys, "train", corpus, "--out", tmp_path / "run", "--max-time", "3",
                           "--hidden-size", "768", "--embedding-size", "8", "--batch-size", "16",
                           "--sequence-length", "64", "--threads", "1")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("charrnn: warning: at ")]
    assert len(warnings) == 1 and "too few to learn much" in warnings[0] and "--max-time 3" in warnings[0]


def test_a_run_that_learned_nothing_says_so(corpus, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", corpus, "--out", tmp_path / "run", "--max-steps", "3",
                           "--learning-rate", "1e-7", *TINY)
    assert code == 0, err
    assert "is hardly below a uniform guess's" in err and "learned almost nothing" in err


def test_a_run_that_learns_gives_no_warning(corpus, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", corpus, "--out", tmp_path / "run", "--max-steps", "60", *TINY)
    assert code == 0, err
    assert "warning" not in err
