"""Short runs (issue 12): the warm-up fits the run, and a run too short to learn says so."""

import time

import pytest
import torch

from charrnn.corpus import prepare_corpus
from charrnn.training import TrainConfig, language_model_trainer
from conftest import SAMPLE_TEXT, run_cli

TINY = ["--hidden-size", "16", "--embedding-size", "8", "--batch-size", "4", "--sequence-length", "16",
        "--threads", "1"]


def test_the_default_warm_up_ends_within_the_first_twentieth_of_a_short_run():
    schedule = TrainConfig(learning_rate=1e-2, decay="constant").schedule
    assert schedule.rate(0, 0.0, run_steps=20) == pytest.approx(1e-4)  # the first step is always gentle
    assert schedule.rate(1, 2 / 20, run_steps=20) == pytest.approx(1e-2)  # a 20-step run: at its peak by step 2
    assert schedule.rate(49, 50 / 5000, run_steps=5000) == pytest.approx(0.5e-2)  # 5000 steps: 100 of warm-up
    assert schedule.rate(1, 0.5) == pytest.approx(2e-4)  # the run's length not known yet: step-wise
    explicit = TrainConfig(learning_rate=1e-2, decay="constant", warmup_steps=100).schedule
    assert explicit.rate(1, 2 / 20, run_steps=20) == pytest.approx(2e-4)  # asked for: kept as it is


def test_a_slow_start_does_not_cut_a_timed_runs_warm_up_short(tmp_path):
    """A run limited by time warms up over a share of the steps it will make, not of its clock: a
    start-up that takes the first 5% of the time (a busy machine, a first step's set-up) leaves the
    warm-up step-wise, where reading the clock would put the second step at the peak rate."""
    (tmp_path / "corpus.txt").write_text(SAMPLE_TEXT * 10, encoding="utf-8")
    corpus = prepare_corpus([tmp_path / "corpus.txt"], tmp_path / "data")
    settings = TrainConfig(hidden_size=16, embedding_size=8, batch_size=4, sequence_length=16,
                           learning_rate=1e-2, decay="constant", max_time=40.0, log_every=1, device="cpu")
    trainer = language_model_trainer(settings, corpus)
    next_batch = trainer.task.next_batch

    def slow_first_batch():
        if trainer.step == 0:
            time.sleep(2.0)
        return next_batch()

    trainer.task.next_batch = slow_first_batch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # train() would choose; a bare trainer uses the process's threads
    try:
        rates = [event.learning_rate for event in trainer.advance(6)]
    finally:
        torch.set_num_threads(threads)
    assert rates[:2] == pytest.approx([1e-4, 2e-4])  # step-wise until the speed is measured
    # Then 5% of thousands of expected steps of a few milliseconds: the 100 steps still hold.
    assert rates[2:] == pytest.approx([(step + 1) * 1e-4 for step in range(2, 6)])


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
