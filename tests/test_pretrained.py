"""The pretrained model that ships with charrnn: found by name, offline, everywhere a checkpoint is."""

import math

import torch

from charrnn.checkpoint import load_model
from charrnn.cli import main
from charrnn.evaluation import evaluate
from charrnn.files import load_tensors
from charrnn.pretrained import PRETRAINED, folder_size, pretrained_path

#: The first lines of tinyshakespeare (public domain), which the model saw in training.
OPENING = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
           "First Citizen:\nYou are all resolved rather to die than to famish?\n")


def test_the_shipped_model_loads_by_name_and_knows_its_text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no folder named shakespeare here: the name is the package's
    loaded = load_model("shakespeare")
    assert loaded.path == pretrained_path("shakespeare")
    assert all(tensor.dtype == torch.float16 for tensor in load_tensors(loaded.path / "model.safetensors").values())
    assert next(loaded.model.parameters()).dtype == torch.float32  # converted back on load
    ids = loaded.vocabulary.encode(OPENING)
    loss = evaluate(loaded.model, ids, batch_size=1, sequence_length=len(ids)).loss
    # A uniform guess costs ln 65 = 4.17 nats; the shipped model's validation loss is near 1.5.
    assert loss < 2.0
    assert folder_size("shakespeare") < 3_000_000
    assert math.isfinite(PRETRAINED["shakespeare"].val_loss)


def test_the_name_works_in_the_commands(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    text = tmp_path / "opening.txt"
    text.write_text(OPENING, encoding="utf-8")
    assert main(["sample", "shakespeare", "--prime", "ROMEO:", "--length", "40", "--seed", "0", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ROMEO:") and len(out) == len("ROMEO:") + 40 + 1
    assert main(["eval", "shakespeare", str(text), "--device", "cpu", "--json"]) == 0
    assert "loss" in capsys.readouterr().out
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert listing.startswith("shakespeare: ") and "validation loss 1." in listing and "made by: charrnn train" in listing


def test_an_unknown_name_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sample", "shakespear"]) == 2
    err = capsys.readouterr().err
    assert err == ("charrnn: error: shakespear: no such checkpoint, run directory or pretrained model "
                   "(pretrained: shakespeare; `charrnn models` lists them)\n")
