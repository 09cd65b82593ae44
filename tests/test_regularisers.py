"""The regularisers of long runs (issue 12): weight dropout, locked dropout, weight tying."""

import pytest
import torch

from charrnn.checkpoint import load_model
from charrnn.files import load_tensors
from charrnn.dropout import LockedDropout
from charrnn.model import CharLM, CharLMConfig
from charrnn.training import train
from conftest import SAMPLE_TEXT, run_cli


def _model(**settings):
    torch.manual_seed(0)
    return CharLM(CharLMConfig(**{"vocab_size": 12, "hidden_size": 16, "embedding_size": 8, **settings}))


def test_weight_dropout_draws_one_mask_per_batch_and_only_in_training():
    model = _model(weight_dropout=0.5).train()
    ids = torch.randint(0, 12, (1, 20)).repeat(3, 1)  # three identical streams
    logits, _ = model(ids)
    # One mask of the matrices for the whole batch: identical streams stay identical (dropout
    # of activations would tell them apart), and the masks change from batch to batch.
    assert torch.equal(logits[0], logits[1]) and torch.equal(logits[1], logits[2])
    assert not torch.equal(model(ids)[0], logits)
    logits.sum().backward()
    assert all(cell.weight_hh.grad is not None and cell.weight_hh.grad.abs().sum() > 0 for cell in model.rnn.cells)
    model.eval()
    plain = _model().eval()
    plain.load_state_dict(model.state_dict())
    assert torch.equal(model(ids)[0], plain(ids)[0])  # no mask in evaluation
    assert set(model.state_dict()) == set(plain.state_dict())  # the checkpoint format is unchanged


def test_locked_dropout_keeps_a_unit_dropped_for_the_whole_sequence():
    torch.manual_seed(0)
    dropout = LockedDropout(0.5).train()
    inputs = torch.ones(4, 30, 8)
    outputs = dropout(inputs)
    assert set(outputs.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(outputs, outputs[:, :1].expand_as(outputs))  # the same at every step
    assert torch.equal(dropout.eval()(inputs), inputs)
    model = _model(input_dropout=0.3, dropout=0.3, locked_dropout=True)
    assert isinstance(model.input_dropout, LockedDropout) and isinstance(model.dropout, LockedDropout)


def test_tied_weights_share_one_matrix_and_survive_a_checkpoint(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(SAMPLE_TEXT, encoding="utf-8")
    code, _, err = run_cli(capsys, "train", corpus, "--out", tmp_path / "run", "--tie-weights", "--hidden-size", "16",
                           "--embedding-size", "16", "--max-steps", "30", "--batch-size", "4",
                           "--sequence-length", "16", "--threads", "1", "--quiet")
    assert code == 0, err
    loaded = load_model(tmp_path / "run")
    assert loaded.model.head.weight is loaded.model.embedding.weight
    saved = load_tensors(tmp_path / "run" / "checkpoints" / "best" / "model.safetensors")
    assert torch.equal(saved["head.weight"], saved["embedding.weight"])
    tied, untied = _model(tie_weights=True, embedding_size=16), _model(embedding_size=16)
    count = lambda model: sum(parameter.numel() for parameter in model.parameters())  # noqa: E731
    assert count(untied) - count(tied) == 12 * 16
    assert run_cli(capsys, "sample", tmp_path / "run", "--length", "10")[0] == 0


def test_tied_weights_without_an_embedding_size_widen_the_embedding_to_the_hidden_size():
    from charrnn.training import TrainConfig, resolve_settings

    assert resolve_settings({"tie_weights": True, "hidden_size": 48}).embedding_size == 48
    tied_preset = resolve_settings({"hidden_size": 128}, preset="cpu-15min")
    assert tied_preset.tie_weights and tied_preset.embedding_size == 128
    untied = resolve_settings({"tie_weights": False}, preset="cpu-15min")
    assert not untied.tie_weights and untied.embedding_size == TrainConfig().embedding_size


def test_a_run_with_every_regulariser_resumes_bitwise(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(SAMPLE_TEXT, encoding="utf-8")
    settings = {"hidden_size": 16, "embedding_size": 16, "batch_size": 4, "sequence_length": 16, "num_threads": 1,
                "device": "cpu", "max_steps": 30, "eval_every": 10, "weight_dropout": 0.3, "input_dropout": 0.2,
                "dropout": 0.2, "locked_dropout": True, "tie_weights": True}
    train(settings, [corpus], tmp_path / "whole", progress=False)
    train(settings, [corpus], tmp_path / "parts", progress=False,
          callback=lambda trainer: trainer.request_stop() if trainer.step == 12 else None)
    train(None, (), tmp_path / "parts", resume=True, progress=False)
    whole, parts = (load_tensors(tmp_path / name / "checkpoints" / "latest" / "model.safetensors")
                    for name in ("whole", "parts"))
    assert all(torch.equal(whole[name], parts[name]) for name in whole)


@pytest.mark.parametrize("flags, message", [
    (["--weight-dropout", "1"], "--weight-dropout must be"),
    (["--input-dropout", "-0.1"], "--input-dropout must be"),
    (["--tie-weights", "--embedding-size", "32"], "--tie-weights needs --embedding-size equal to --hidden-size"),
    (["--weight-dropout", "0.2", "--cell", "gru"], "--weight-dropout needs a cell"),
])
def test_bad_regulariser_settings_are_one_line_errors(tmp_path, capsys, flags, message):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(SAMPLE_TEXT, encoding="utf-8")
    code, _, err = run_cli(capsys, "train", corpus, "--out", tmp_path / "run", *flags)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()
