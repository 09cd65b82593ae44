"""The low-precision step (``--dtype bfloat16`` / ``int8``): packed kernels, accuracy, what is refused."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from charrnn.errors import SettingError
from charrnn.fused import inference_layers
from charrnn.model import CharLM, CharLMConfig
from charrnn.quantization import PackedLinear, PackedLSTM, precision_name
from charrnn.sampling import CharacterStepper, beam_search, sample, sample_streams, sample_text
from charrnn.unroll import flatten_state
from charrnn.vocabulary import Vocabulary
from conftest import run_cli as _run
from test_sampling import MEMORISED, memorised  # noqa: F401  (the fixture: a 1x32 LSTM that knows MEMORISED)

KERNELS = [None, "reference"]  # the fastest this machine has, and the portable one


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("precision, tolerance", [("float32", 1e-5), ("bfloat16", 2e-2), ("int8", 2e-2)])
def test_packed_products_match_the_exact_one(precision, tolerance, kernel):
    generator = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(96, 40, generator=generator), torch.randn(96, generator=generator)
    inputs = torch.rand(3, 40, generator=generator) * 2 - 1  # like an LSTM's h, in (-1, 1)
    product = PackedLinear(weight, bias, precision, batch_size=3, kernel=kernel)
    outputs = product(inputs.to(product.input_dtype)).float()  # (3, 96)
    expected = F.linear(inputs, weight, bias)
    scale = expected.abs().max().item()
    assert (outputs - expected).abs().max().item() <= tolerance * scale
    added = product(inputs.to(product.input_dtype), add=torch.ones(3, 96), out=torch.empty(3, 96))
    torch.testing.assert_close(added.float(), outputs + 1, atol=1e-5 * scale, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.int8])
def test_greedy_reproduces_a_memorised_text_in_low_precision(memorised, dtype):  # noqa: F811
    model, vocabulary = memorised
    text = sample_text(model, vocabulary, prime="the c", length=2 * len(MEMORISED) - 5, greedy=True, dtype=dtype)
    assert text == (MEMORISED * 2)[5:]
    columns = list(sample_streams(model, vocabulary, 3, prime="the cat", length=60, greedy=True, dtype=dtype))
    for stream in range(3):
        assert "".join(column[stream] for column in columns) == (MEMORISED * 2)[7:67]
    assert beam_search(model, vocabulary, prime="the c", length=40, beam_width=3, dtype=dtype)[0][0] \
        == (MEMORISED * 2)[5:45]


@pytest.mark.parametrize("precision", ["float32", "bfloat16", "int8"])
def test_the_portable_kernels_reproduce_a_memorised_text(memorised, precision):  # noqa: F811
    model, vocabulary = memorised
    weights = inference_layers(model.rnn).weights
    stepper = PackedLSTM(weights, model.embedding.weight, model.head.weight, model.head.bias, precision,
                         kernel="reference")
    ids = torch.as_tensor(vocabulary.encode(MEMORISED * 2))
    with torch.inference_mode():
        predicted = [int(stepper.step(ids[position:position + 1]).argmax()) for position in range(len(ids) - 1)]
    assert predicted == ids[1:].tolist()


def test_int8_stays_close_to_float32_and_leaves_the_model_alone(memorised):  # noqa: F811
    model, vocabulary = memorised
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    ids = torch.as_tensor(vocabulary.encode(MEMORISED * 2))
    losses = {}
    for dtype in (torch.float32, torch.int8):
        stepper = CharacterStepper(model, dtype=dtype)
        logits = torch.cat([stepper.step(ids[position:position + 1]) for position in range(len(ids) - 1)])
        losses[dtype] = F.cross_entropy(logits, ids[1:]).item()
    assert abs(losses[torch.int8] - losses[torch.float32]) < 0.02, losses
    assert all(torch.equal(tensor, before[name]) for name, tensor in model.state_dict().items())


def test_an_int8_stepper_carries_reorders_and_restores_its_state():
    torch.manual_seed(1)
    model = CharLM(CharLMConfig(vocab_size=9, hidden_size=16, num_layers=2, embedding_size=6)).eval()
    ids = torch.randint(0, 9, (3, 12), generator=torch.Generator().manual_seed(2))
    _, expected_state = model(ids)
    stepper = CharacterStepper(model, batch_size=3, dtype=torch.int8)
    for position in range(12):
        stepper.step(ids[:, position])
    for leaf, expected in zip(flatten_state(stepper.state), flatten_state(expected_state)):
        assert leaf.dtype == torch.float32 and (leaf - expected).abs().max() < 0.05
    stepper.set_state(expected_state)
    for leaf, expected in zip(flatten_state(stepper.state), flatten_state(expected_state)):
        torch.testing.assert_close(leaf, expected)
    stepper.select(torch.tensor([2, 2, 0]))
    for leaf, expected in zip(flatten_state(stepper.state), flatten_state(expected_state)):
        torch.testing.assert_close(leaf, expected[[2, 2, 0]])


@pytest.mark.parametrize("cell", ["gru", "gru-reset-after", "rnn"])
def test_int8_is_refused_for_other_cells_at_the_call(cell):
    model = CharLM(CharLMConfig(vocab_size=3, cell=cell, hidden_size=8, embedding_size=4))
    vocabulary = Vocabulary.from_text("ab\n")
    message = f"--dtype int8 runs LSTM models only; this one is a {cell} model"
    with pytest.raises(SettingError) as error:
        sample(model, vocabulary, dtype=torch.int8)  # before any character is asked for
    assert str(error.value) == message
    with pytest.raises(SettingError, match=message):
        beam_search(model, vocabulary, dtype=torch.int8)
    # bfloat16 still runs them (a bfloat16 copy of the model).
    assert len(sample_text(model, vocabulary, length=5, dtype=torch.bfloat16)) == 5


def test_precision_names():
    assert [precision_name(dtype) for dtype in (None, torch.float32, torch.bfloat16, torch.int8)] \
        == ["float32", "float32", "bfloat16", "int8"]
    with pytest.raises(ValueError, match="no step kernel for dtype torch.float64"):
        precision_name(torch.float64)


def test_the_cli_samples_in_int8_and_refuses_an_unknown_dtype(run_dir, capsys):
    argv = ["sample", run_dir, "--prime", "line", "--length", "40"]
    code, exact, _ = _run(capsys, *argv, "--greedy")
    code, rounded, _ = _run(capsys, *argv, "--greedy", "--dtype", "int8")
    assert code == 0 and rounded.startswith("line") and len(rounded) == len(exact)
    code, first, _ = _run(capsys, *argv, "--seed", "3", "--dtype", "int8")
    assert code == 0 and _run(capsys, *argv, "--seed", "3", "--dtype", "int8")[1] == first
    code, out, err = _run(capsys, *argv, "--dtype", "int4")
    assert code == 2 and out == ""
    assert err.startswith("charrnn: error: sample: argument --dtype: invalid choice: 'int4' (choose from ")
    assert err.count("\n") == 1 and "int8" in err


def test_the_cli_refuses_int8_for_a_gru_in_one_line(tmp_path, capsys):
    from charrnn.checkpoint import save_checkpoint

    vocabulary = Vocabulary.from_text("ab\n")
    config = CharLMConfig(vocab_size=3, cell="gru", hidden_size=8, embedding_size=4)
    folder = save_checkpoint(tmp_path / "gru", CharLM(config), vocabulary, config)
    code, out, err = _run(capsys, "sample", folder, "--dtype", "int8", "--length", "5")
    assert code == 2 and out == ""
    assert err == "charrnn: error: --dtype int8 runs LSTM models only; this one is a gru model\n"
    code, out, err = _run(capsys, "sample", folder, "--dtype", "int8", "--beam-width", "2", "--length", "5")
    assert code == 2 and err == "charrnn: error: --dtype int8 runs LSTM models only; this one is a gru model\n"
    assert _run(capsys, "sample", folder, "--dtype", "bfloat16", "--length", "5")[0] == 0
