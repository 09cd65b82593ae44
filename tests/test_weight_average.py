"""The moving average of the weights (``--average-decay``, issue 12): what it averages, what it
changes (the model evaluated, sampled and saved) and what it leaves alone (training itself)."""

import pytest
import torch

from charrnn.checkpoint import load_model
from charrnn.corpus import prepare_corpus
from charrnn.evaluation import evaluate
from charrnn.files import load_tensors
from charrnn.training import TrainConfig, language_model_trainer, train
from conftest import SAMPLE_TEXT, run_cli

SMALL = {"hidden_size": 16, "embedding_size": 8, "batch_size": 4, "sequence_length": 16, "num_threads": 1,
         "device": "cpu", "dropout": 0.2}


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(SAMPLE_TEXT, encoding="utf-8")
    return path


def _weights(model):
    return [parameter.detach().clone() for parameter in model.parameters()]


def test_the_average_is_the_moving_average_of_the_trained_weights_and_training_is_unchanged(corpus, tmp_path):
    prepared = prepare_corpus([corpus], tmp_path / "data")
    decay, steps = 0.8, 12
    # One after the other: the dropout masks come from the global generator, seeded by each.
    plain = language_model_trainer(TrainConfig(**SMALL, max_steps=steps, eval_every=100), prepared)
    plain.advance(steps)
    averaged = language_model_trainer(TrainConfig(**SMALL, max_steps=steps, eval_every=100, average_decay=decay),
                                      prepared)
    expected = None
    for _ in range(steps):
        averaged.advance(1)
        now = _weights(averaged.model)
        # Started at the first step's weights, then average <- decay * average + (1 - decay) * weights.
        expected = now if expected is None else [decay * old + (1 - decay) * new for old, new in zip(expected, now)]
    assert all(torch.equal(a, b) for a, b in zip(_weights(averaged.model), _weights(plain.model)))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(_weights(averaged.evaluated_model), expected))
    assert not torch.equal(_weights(averaged.evaluated_model)[0], _weights(averaged.model)[0])
    assert plain.evaluated_model is plain.model


def test_a_run_evaluates_samples_and_saves_the_average_and_resumes_bitwise(corpus, tmp_path):
    settings = {**SMALL, "max_steps": 30, "eval_every": 10, "average_decay": 0.9, "tie_weights": True,
                "embedding_size": 16}
    result = train(settings, [corpus], tmp_path / "whole", progress=False)
    train(settings, [corpus], tmp_path / "parts", progress=False,
          callback=lambda trainer: trainer.request_stop() if trainer.step == 13 else None)
    train(None, (), tmp_path / "parts", resume=True, progress=False)
    for name in ("model", "trained"):
        whole, parts = (load_tensors(tmp_path / run / "checkpoints" / "latest" / f"{name}.safetensors")
                        for run in ("whole", "parts"))
        assert all(torch.equal(whole[key], parts[key]) for key in whole), name
    latest = tmp_path / "whole" / "checkpoints" / "latest"
    average, trained = load_tensors(latest / "model.safetensors"), load_tensors(latest / "trained.safetensors")
    assert not torch.equal(average["head.bias"], trained["head.bias"])
    # The validation loss the run reports is the average's, as a user loading the run gets it.
    loaded = load_model(tmp_path / "whole")
    _, val_ids = prepare_corpus([corpus], tmp_path / "again").split(0.1)
    settled = TrainConfig(**settings)
    loss = evaluate(loaded.model, val_ids, batch_size=settled.batch_size,
                    sequence_length=settled.sequence_length).loss
    assert loss == pytest.approx(result.best_val_loss, abs=1e-5)


@pytest.mark.parametrize("value", ["1", "-0.1", "nan"])
def test_an_average_decay_out_of_range_is_a_one_line_error(corpus, tmp_path, capsys, value):
    code, _, err = run_cli(capsys, "train", corpus, "--out", tmp_path / "run", "--average-decay", value)
    assert code == 2 and "--average-decay must be" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_a_resumed_run_keeps_its_average_decay(corpus, tmp_path, capsys):
    common = ["--hidden-size", "16", "--embedding-size", "8", "--batch-size", "4", "--sequence-length", "16",
              "--threads", "1", "--quiet"]
    run = tmp_path / "run"
    assert run_cli(capsys, "train", corpus, "--out", run, "--max-steps", "5", "--average-decay", "0.9", *common)[0] == 0
    code, _, err = run_cli(capsys, "train", "--out", run, "--resume", "--override", "--max-steps", "8",
                           "--average-decay", "0.5", "--quiet")
    assert code == 2 and "average_decay" in err.replace("-", "_") and len(err.strip().splitlines()) == 1, err
    assert run_cli(capsys, "train", "--out", run, "--resume", "--max-steps", "8", "--quiet")[0] == 0
    assert run_cli(capsys, "sample", run, "--length", "20", "--seed", "1")[0] == 0
