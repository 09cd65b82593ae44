"""``--amp bf16`` on a CPU: PyTorch's CPU autocast through the trainer. It learns, and resumes bitwise."""

import pytest
import torch

from charrnn.checkpoint import load_model
from charrnn.files import load_tensors
from charrnn.training import train
from charrnn.training.reporting import MetricsLog
from conftest import SAMPLE_TEXT, run_cli

SETTINGS = {"hidden_size": 32, "embedding_size": 16, "batch_size": 8, "sequence_length": 32, "num_threads": 1,
            "device": "cpu", "max_steps": 120, "eval_every": 60, "warmup_steps": 5}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("amp") / "corpus.txt"
    path.write_text(SAMPLE_TEXT * 3, encoding="utf-8")
    return path


def _val_losses(run):
    return [record["val_loss"] for record in MetricsLog(run / "metrics.jsonl").read() if "val_loss" in record]


def test_bf16_training_on_a_cpu_learns_as_float32_does(corpus, tmp_path):
    losses = {}
    for amp in ("none", "bf16"):
        result = train({**SETTINGS, "amp": amp}, [corpus], tmp_path / amp, progress=False)
        assert result.exit_code == 0
        losses[amp] = _val_losses(tmp_path / amp)[-1]
    assert losses["bf16"] < 0.5  # from ln(30) = 3.4 nats: the repeated lines are learned (0.21 seen)
    assert abs(losses["bf16"] - losses["none"]) < 0.05, losses
    # The weights stay float32; autocast computes the products in bfloat16.
    assert load_model(tmp_path / "bf16").model.head.weight.dtype == torch.float32


def test_bf16_resume_is_bitwise_exact(corpus, tmp_path):
    settings = {**SETTINGS, "amp": "bf16", "max_steps": 40, "eval_every": 10}
    train(settings, [corpus], tmp_path / "whole", progress=False)
    stopped = train(settings, [corpus], tmp_path / "parts", progress=False,
                    callback=lambda trainer: trainer.request_stop() if trainer.step == 15 else None)
    assert stopped.stop_reason == "interrupted"
    assert train(None, (), tmp_path / "parts", resume=True, progress=False).step == 40
    whole, parts = (load_tensors(tmp_path / name / "checkpoints" / "latest" / "model.safetensors")
                    for name in ("whole", "parts"))
    assert whole.keys() == parts.keys()
    assert all(torch.equal(whole[name], parts[name]) for name in whole)
    assert _val_losses(tmp_path / "whole") == _val_losses(tmp_path / "parts")


def test_the_command_line_takes_bf16_on_a_cpu(corpus, tmp_path, capsys):
    code, out, err = run_cli(capsys, "train", corpus, "--out", tmp_path / "run", "--amp", "bf16", "--device", "cpu",
                             "--max-steps", "4", "--hidden-size", "16", "--embedding-size", "8", "--threads", "1",
                             "--quiet")
    assert code == 0, err
    assert out.startswith("finished after 4 steps")


def test_auto_is_bf16_exactly_where_the_cpu_has_bfloat16_instructions(monkeypatch):
    from charrnn import devices
    from charrnn.devices import resolve_amp

    cpu = torch.device("cpu")
    for has, expected in ((True, "bf16"), (False, "none")):
        monkeypatch.setattr(devices, "cpu_has_bf16", lambda has=has: has)
        assert resolve_amp("auto", cpu) == expected
    assert resolve_amp("none", cpu) == "none" and resolve_amp("bf16", cpu) == "bf16"
    assert resolve_amp("auto", torch.device("mps")) == "none"
