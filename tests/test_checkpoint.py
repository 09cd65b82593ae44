"""Checkpoints: round trips, run-directory resolution, and a clear error for every kind of damage."""

import json
import pickle
import random
import shutil

import numpy as np
import pytest
import torch

from charrnn.checkpoint import LoadedModel, load_model, resolve_checkpoint, save_checkpoint
from charrnn.files import replace_folder
from charrnn.training.state import (optimizer_state_from_tensors, optimizer_state_to_tensors, random_state_tensors,
                                    restore_random_state)
from charrnn.errors import CharRNNError
from charrnn.files import CheckpointError, load_tensors, save_tensors
from charrnn.model import CharLM, CharLMConfig
from charrnn.vocabulary import Vocabulary

TEXT = "the quick brown fox jumps over the lazy dog\n"


def make_model(cell="lstm", seed=0):
    vocabulary = Vocabulary.from_text(TEXT)
    config = CharLMConfig(vocabulary.size, cell=cell, hidden_size=12, num_layers=2, embedding_size=6,
                          forget_bias=0.25)
    torch.manual_seed(seed)
    return CharLM(config), vocabulary, config


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_round_trip_gives_the_same_logits(tmp_path, cell):
    model, vocabulary, config = make_model(cell)
    folder = save_checkpoint(tmp_path / "ckpt", model, vocabulary, config, training={"seed": 3})
    loaded = load_model(folder)
    assert isinstance(loaded, LoadedModel)
    assert loaded.path == folder and loaded.config == config and loaded.vocabulary == vocabulary
    assert not loaded.model.training
    if cell == "lstm":
        assert [c.forget_bias for c in loaded.model.rnn.cells] == [0.25, 0.25]
    ids = torch.from_numpy(vocabulary.encode("the lazy dog")).unsqueeze(0)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(ids)[0], loaded.model(ids)[0])
    assert json.loads((folder / "config.json").read_text())["training"] == {"seed": 3}


def test_resolve_run_directory_prefers_best_then_latest(tmp_path):
    model, vocabulary, config = make_model()
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="no checkpoint yet"):
        resolve_checkpoint(run)
    latest = save_checkpoint(run / "checkpoints" / "latest", model, vocabulary, config)
    assert resolve_checkpoint(run) == latest
    best = save_checkpoint(run / "checkpoints" / "best", model, vocabulary, config)
    assert resolve_checkpoint(run) == best
    assert resolve_checkpoint(latest) == latest
    assert resolve_checkpoint(latest / "model.safetensors") == latest
    assert load_model(run).path == best


def test_resave_replaces_whole_folder_and_extras(tmp_path):
    model, vocabulary, config = make_model()
    folder = tmp_path / "latest"
    save_checkpoint(folder, model, vocabulary, config, extra_json={"trainer": {"step": 1}},
                          extra_tensors={"trainer": {"x": torch.ones(2)}})
    save_checkpoint(folder, model, vocabulary, config, extra_json={"trainer": {"step": 2}})
    assert json.loads((folder / "trainer.json").read_text()) == {"step": 2}
    assert not (folder / "trainer.safetensors").exists()  # the old folder went as a whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]  # no temporary leftovers


def test_crash_between_renames_leaves_a_loadable_copy(tmp_path):
    model, vocabulary, config = make_model()
    run = tmp_path / "run"
    latest = save_checkpoint(run / "checkpoints" / "latest", model, vocabulary, config)
    # The instant between replace_folder's two renames: only the parked copy exists.
    latest.rename(run / "checkpoints" / ".latest.previous")
    assert load_model(run).path.name == ".latest.previous"
    # The next save restores it first and then replaces it.
    save_checkpoint(latest, model, vocabulary, config)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest"]


def test_refuses_to_replace_a_folder_that_is_not_a_checkpoint(tmp_path):
    model, vocabulary, config = make_model()
    (tmp_path / "notes.txt").write_text("precious")
    with pytest.raises(CharRNNError, match="holds no checkpoint"):
        save_checkpoint(tmp_path, model, vocabulary, config)
    assert (tmp_path / "notes.txt").read_text() == "precious"


def test_replace_folder_into_empty_target(tmp_path):
    source = tmp_path / "new"
    source.mkdir()
    (source / "a").write_text("1")
    replace_folder(source, tmp_path / "target")
    assert (tmp_path / "target" / "a").read_text() == "1" and not source.exists()


@pytest.fixture
def checkpoint(tmp_path):
    model, vocabulary, config = make_model()
    return save_checkpoint(tmp_path / "ckpt", model, vocabulary, config)


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "vocab.json"])
def test_missing_file_is_named(checkpoint, name):
    (checkpoint / name).unlink()
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
        load_model(checkpoint)


def test_truncated_weights(checkpoint):
    data = (checkpoint / "model.safetensors").read_bytes()
    (checkpoint / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors: not a valid safetensors file"):
        load_model(checkpoint)


def test_config_that_contradicts_the_weights(checkpoint):
    values = json.loads((checkpoint / "config.json").read_text())
    values["model"]["hidden_size"] = 16
    (checkpoint / "config.json").write_text(json.dumps(values))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: tensor .* has shape"):
        load_model(checkpoint)


def test_bad_config_values_are_named(checkpoint):
    values = json.loads((checkpoint / "config.json").read_text())
    values["model"]["dropout"] = 3
    (checkpoint / "config.json").write_text(json.dumps(values))
    with pytest.raises(CheckpointError, match=r"config\.json: --dropout must be"):
        load_model(checkpoint)
    (checkpoint / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json: not valid JSON"):
        load_model(checkpoint)


def test_vocabulary_that_does_not_match_the_model(checkpoint):
    (checkpoint / "vocab.json").write_text(json.dumps({"characters": ["a", "b"]}))
    with pytest.raises(CheckpointError, match=r"vocab\.json: holds 2 characters"):
        load_model(checkpoint)
    (checkpoint / "vocab.json").write_text(json.dumps({"characters": ["b", "a"]}))
    with pytest.raises(CheckpointError, match=r"vocab\.json: expected"):
        load_model(checkpoint)


def test_weights_with_nan_or_extra_tensors(checkpoint):
    tensors = load_tensors(checkpoint / "model.safetensors")
    tensors["head.bias"][0] = float("nan")
    save_tensors(checkpoint / "model.safetensors", tensors)
    with pytest.raises(CheckpointError, match="head.bias holds NaN"):
        load_model(checkpoint)
    tensors["head.bias"][0] = 0.0
    tensors["extra"] = torch.zeros(1)
    save_tensors(checkpoint / "model.safetensors", tensors)
    with pytest.raises(CheckpointError, match="unexpected extra"):
        load_model(checkpoint)


class Boom:
    def __reduce__(self):
        return (print, ("EXECUTED",))


def test_pickle_is_refused_without_unpickling(tmp_path, checkpoint, capsys):
    payload = pickle.dumps({"weights": Boom()})
    (checkpoint / "model.safetensors").write_bytes(payload)
    with pytest.raises(CheckpointError, match="pickle"):
        load_model(checkpoint)
    torch.save({"a": torch.ones(1)}, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="refused without unpickling"):
        load_model(tmp_path / "model.pt")
    assert "EXECUTED" not in capsys.readouterr().out


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "absent")
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        load_model(tmp_path)


def test_optimizer_state_round_trip(tmp_path):
    model, _, _ = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    ids = torch.zeros(2, 5, dtype=torch.long)
    model(ids)[0].sum().backward()
    optimizer.step()
    tensors, structure = optimizer_state_to_tensors(optimizer.state_dict())
    save_tensors(tmp_path / "optimizer.safetensors", tensors)
    reloaded = optimizer_state_from_tensors(load_tensors(tmp_path / "optimizer.safetensors"),
                                            json.loads(json.dumps(structure)), tmp_path)
    fresh = torch.optim.Adam(model.parameters(), lr=0.5)
    fresh.load_state_dict(reloaded)
    assert fresh.param_groups[0]["lr"] == 0.01 and fresh.param_groups[0]["betas"] == (0.9, 0.999)
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            assert torch.equal(fresh.state_dict()["state"][index][name], value)
    with pytest.raises(CheckpointError, match="optimizer state is damaged"):
        optimizer_state_from_tensors({}, structure, tmp_path)


def test_random_state_round_trip_leaves_numpys_global_generator_alone():
    torch.manual_seed(1)
    saved = random_state_tensors()
    expected = torch.rand(3)
    torch.manual_seed(5)
    np.random.seed(6)
    numpy_state = np.random.get_state()[1].copy()
    restore_random_state(saved)
    assert torch.equal(torch.rand(3), expected)
    assert np.array_equal(np.random.get_state()[1], numpy_state)  # nothing draws from it: not saved, not set
    assert not any(name.startswith("rng.numpy") for name in saved)


def test_mutated_checkpoints_only_raise_clear_errors(checkpoint, tmp_path):
    """A short fuzz run: flipped, cut, inserted bytes and extreme numbers in each file."""
    rng = random.Random(0)
    for case in range(150):
        mutated = tmp_path / f"case{case}"
        shutil.copytree(checkpoint, mutated)
        name = rng.choice(["model.safetensors", "config.json", "vocab.json"])
        data = bytearray((mutated / name).read_bytes())
        operation = case % 4
        if operation == 0:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif operation == 1:
            data = data[: rng.randrange(len(data))]
        elif operation == 2:
            at = rng.randrange(len(data))
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            digits = [i for i, byte in enumerate(data) if chr(byte).isdigit()] or [0]
            at = rng.choice(digits)
            data[at:at + 1] = str(rng.choice([0, 9, 10 ** 12])).encode()
        (mutated / name).write_bytes(bytes(data))
        try:
            loaded = load_model(mutated)
        except CharRNNError as error:
            assert "\n" not in str(error)
        else:
            assert all(torch.isfinite(p).all() for p in loaded.model.parameters())
        shutil.rmtree(mutated)


def test_a_full_disk_mid_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import errno

    import charrnn.checkpoint as checkpoint_module

    model, vocabulary, config = make_model()
    folder = save_checkpoint(tmp_path / "latest", model, vocabulary, config, extra_json={"trainer": {"step": 1}})
    real_save = checkpoint_module.save_tensors

    def fill_up(path, tensors, metadata=None):
        if path.name == "optimizer.safetensors":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(path, tensors, metadata)

    monkeypatch.setattr(checkpoint_module, "save_tensors", fill_up)
    with pytest.raises(CharRNNError, match="No space left on device.*previous one is unchanged") as caught:
        save_checkpoint(folder, model, vocabulary, config, extra_tensors={"optimizer": {"m": torch.ones(2)}},
                              extra_json={"trainer": {"step": 2}})
    assert caught.value.exit_code == 1
    assert json.loads((folder / "trainer.json").read_text()) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]
    assert load_model(folder).path == folder


def test_a_kind_that_is_not_a_string_is_an_unknown_kind():
    from charrnn.checkpoint import checkpoint_kind

    # An edited config.json may hold any JSON in "kind": it is no known kind, never a TypeError.
    for kind in ({"a": 1}, ["language-model"], 3, None):
        assert checkpoint_kind({"format": "charrnn-checkpoint", "kind": kind}) is None
