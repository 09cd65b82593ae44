"""Issue 9: ``dynamic_rnn`` checks its initial state, takes plain ``(c, h)`` tuples, the cells
load from the meta device, ``torch.compile`` takes sequence lengths, and the library leaves
process-wide settings alone.

A wrong-shaped state once reached the fused kernels, which read memory by the sizes they are
told: a crash, or silent garbage. Those cases run in a separate interpreter, so that a crash
fails the tests instead of killing pytest.
"""

import json
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from charrnn import LSTMStateTuple, MultiRNNCell, RNNCell, dynamic_rnn, make_cell
from charrnn.model import CharLM, CharLMConfig
from charrnn.sampling import CharacterStepper
from charrnn.unroll import flatten_state

PATHS = {"fused": None, "step": False}  # dynamic_rnn's ``fused`` argument for each path


def run_isolated(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter on one thread (a crash there fails only the caller)."""
    preamble = "import torch; torch.set_num_threads(1)\n"
    return subprocess.run([sys.executable, "-c", preamble + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300, cwd=Path(__file__).parent)


def stack(kind, layers=2, units=8, input_size=3):
    torch.manual_seed(0)
    cells = [make_cell(kind, units, input_size if layer == 0 else units) for layer in range(layers)]
    return MultiRNNCell(cells)


# -- 1. a wrong state is refused before any kernel sees it -------------------------------------------
def _lstm_pair_as_tensor():
    return make_cell("lstm", 5, 3), torch.randn(2, 4, 3), torch.zeros(2, 5)


def _lstm_triple():
    return make_cell("lstm", 5, 3), torch.randn(2, 4, 3), (torch.zeros(2, 5),) * 3


def _stack_missing_a_layer():
    cell = stack("lstm")
    return cell, torch.randn(4, 5, 3), cell.zero_state(4)[:1]


def _leaf_not_a_tensor():
    return make_cell("lstm", 5, 3), torch.randn(2, 4, 3), (torch.zeros(2, 5), [[0.0] * 5] * 2)


def _stack_of_the_wrong_batch():  # CharLM's crash: the state of a batch of 2 for 4 sequences
    cell = stack("lstm")
    return cell, torch.randn(4, 5, 3), cell.zero_state(2)


def _rnn_of_the_wrong_batch():
    cell = stack("rnn")
    return cell, torch.randn(4, 5, 3), cell.zero_state(2)


def _lstm_of_the_wrong_units():  # the issue's heap corruption
    return make_cell("lstm", 6, 3), torch.randn(2, 4, 3), LSTMStateTuple(torch.zeros(2, 5), torch.zeros(2, 5))


def _rnn_of_the_wrong_units():
    return make_cell("rnn", 4, 3), torch.randn(2, 4, 3), torch.zeros(2, 3)


def _state_as_kernels_want_it():  # torch.nn.LSTM's (L, B, N) layout is not ours
    return make_cell("rnn", 4, 3), torch.randn(2, 4, 3), torch.zeros(1, 2, 4)


def _stack_of_the_wrong_dtype():
    cell = stack("lstm")
    return cell, torch.randn(4, 5, 3), cell.zero_state(4, dtype=torch.float64)


def _state_on_another_device():
    cell = stack("lstm")
    state = cell.zero_state(4)
    return cell, torch.randn(4, 5, 3), (state[0], LSTMStateTuple(state[1].c, state[1].h.to("meta")))


WRONG_STATES = {  # name: (what makes it, the error's message)
    "structure-lstm-tensor": (_lstm_pair_as_tensor, r"^initial_state is a Tensor, expected a \(c, h\) pair"),
    "structure-lstm-triple": (_lstm_triple, r"^initial_state holds 3 entries, expected a \(c, h\) pair"),
    "structure-stack-layers": (_stack_missing_a_layer,
                               r"^initial_state holds 1 entries, expected a tuple of 2 \(one per layer\)"),
    "structure-not-a-tensor": (_leaf_not_a_tensor, r"^initial_state: h is a list, expected a tensor"),
    "batch-lstm": (_stack_of_the_wrong_batch,
                   r"^initial_state: layer 0's c has shape \[2, 8\], expected \[4, 8\] \(batch 4, 8 units\)"),
    "batch-rnn": (_rnn_of_the_wrong_batch, r"^initial_state: layer 0 has shape \[2, 8\], expected \[4, 8\]"),
    "units-lstm": (_lstm_of_the_wrong_units,
                   r"^initial_state: c has shape \[2, 5\], expected \[2, 6\] \(batch 2, 6 units\)"),
    "units-rnn": (_rnn_of_the_wrong_units, r"^initial_state has shape \[2, 3\], expected \[2, 4\]"),
    "units-kernel-layout": (_state_as_kernels_want_it, r"^initial_state has shape \[1, 2, 4\], expected \[2, 4\]"),
    "dtype": (_stack_of_the_wrong_dtype,
              r"^initial_state: layer 0's c has dtype torch.float64, expected torch.float32"),
    "device": (_state_on_another_device, r"^initial_state: layer 1's h is on meta, expected cpu"),
}


def report_wrong_states() -> None:
    """Print, one JSON line per case and path, what ``dynamic_rnn`` did with each wrong state."""
    for name, (make, _) in WRONG_STATES.items():
        for path, fused in PATHS.items():
            cell, inputs, state = make()
            try:
                outputs, _ = dynamic_rnn(cell, inputs, initial_state=state, fused=fused)
                result = {"error": None, "message": f"returned outputs of shape {list(outputs.shape)}"}
            except Exception as error:  # noqa: BLE001 - the test reports whatever came
                result = {"error": type(error).__name__, "message": str(error)}
            print(json.dumps({"case": name, "path": path, **result}), flush=True)


@pytest.fixture(scope="module")
def wrong_state_results():
    run = run_isolated("import test_state_checks; test_state_checks.report_wrong_states()")
    results = {}
    for line in run.stdout.splitlines():
        entry = json.loads(line)
        results[entry["case"], entry["path"]] = entry
    return results, run


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", WRONG_STATES)
def test_a_wrong_initial_state_is_a_value_error_naming_it(wrong_state_results, case, path):
    results, run = wrong_state_results
    if (case, path) not in results:
        pytest.fail(f"the isolated run stopped before this case (return code {run.returncode}): "
                    f"{run.stderr[-2000:]}")
    result = results[case, path]
    assert result["error"] == "ValueError", result["message"]
    assert result["message"] == result["message"].strip()
    assert re.search(WRONG_STATES[case][1], result["message"]), result["message"]


def test_the_issues_crashes_are_value_errors():
    run = run_isolated("""
        import torch
        from charrnn import BasicLSTMCell, LSTMStateTuple, dynamic_rnn
        from charrnn.model import CharLM, CharLMConfig
        m = CharLM(CharLMConfig(vocab_size=7, hidden_size=8, num_layers=2, embedding_size=4)).eval()
        _, s = m(torch.randint(0, 7, (2, 5)))
        for attempt in [lambda: m(torch.randint(0, 7, (4, 5)), s),
                        lambda: dynamic_rnn(BasicLSTMCell(6, 3), torch.randn(2, 4, 3),
                                            initial_state=LSTMStateTuple(torch.zeros(2, 5), torch.zeros(2, 5)))]:
            try:
                attempt()
                print("no error")
            except ValueError as error:
                print("ValueError:", error)
    """)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines() == [
        "ValueError: initial_state: layer 0's c has shape [2, 8], expected [4, 8] (batch 4, 8 units)",
        "ValueError: initial_state: c has shape [2, 5], expected [2, 6] (batch 2, 6 units)",
    ]


def test_autocast_states_are_accepted():
    # Under autocast the fused kernels return states in autocast's dtype, and the trainer carries
    # them into the next batch, whose inputs are float32.
    model = CharLM(CharLMConfig(vocab_size=7, hidden_size=8, num_layers=2, embedding_size=4))
    ids = torch.randint(0, 7, (2, 5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, state = model(ids)
        model(ids, state)
    with pytest.raises(ValueError, match="dtype torch.bfloat16, expected torch.float32"):
        model(ids, state)


# -- 2. plain tuples work wherever LSTMStateTuple does -----------------------------------------------
def as_plain_tuples(state):
    if isinstance(state, torch.Tensor):
        return state
    return tuple(as_plain_tuples(part) for part in state)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("lengths", [None, [5, 2, 0]], ids=["full", "lengths"])
def test_a_plain_tuple_state_equals_lstm_state_tuple(path, layers, lengths):
    cell = stack("lstm", layers) if layers > 1 else make_cell("lstm", 8, 3)
    inputs = torch.randn(3, 5, 3)
    state = torch.utils._pytree.tree_map(torch.randn_like, cell.zero_state(3))
    expected, expected_state = dynamic_rnn(cell, inputs, lengths, state, fused=PATHS[path])
    outputs, final_state = dynamic_rnn(cell, inputs, lengths, as_plain_tuples(state), fused=PATHS[path])
    torch.testing.assert_close(outputs, expected, rtol=0, atol=0)
    for got, want in zip(flatten_state(final_state), flatten_state(expected_state)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    layer_states = final_state if layers > 1 else (final_state,)
    assert type(final_state) is (tuple if layers > 1 else LSTMStateTuple)
    assert all(type(layer_state) is LSTMStateTuple for layer_state in layer_states)


def test_a_list_of_plain_pairs_is_a_stack_state():
    cell = stack("lstm")
    inputs = torch.randn(3, 5, 3)
    state = torch.utils._pytree.tree_map(torch.randn_like, cell.zero_state(3))
    _, expected = dynamic_rnn(cell, inputs, initial_state=state)
    _, final_state = dynamic_rnn(cell, inputs, initial_state=[list(layer_state) for layer_state in state])
    assert type(final_state) is tuple and type(final_state[1]) is LSTMStateTuple
    torch.testing.assert_close(final_state[1].h, expected[1].h, rtol=0, atol=0)


def test_the_model_and_the_stepper_take_plain_tuples():
    torch.manual_seed(0)
    model = CharLM(CharLMConfig(vocab_size=7, hidden_size=8, num_layers=2, embedding_size=4)).eval()
    ids = torch.randint(0, 7, (2, 5))
    _, state = model(ids)
    expected, _ = model(ids, state)
    logits, _ = model(ids, as_plain_tuples(state))
    torch.testing.assert_close(logits, expected, rtol=0, atol=0)

    stepper, plain_stepper = CharacterStepper(model, batch_size=2), CharacterStepper(model, batch_size=2)
    stepper.set_state(state)
    plain_stepper.set_state(as_plain_tuples(state))
    torch.testing.assert_close(plain_stepper.step(ids[:, 0]), stepper.step(ids[:, 0]), rtol=0, atol=0)
    assert all(type(layer_state) is LSTMStateTuple for layer_state in plain_stepper.state)


# -- 3. models made on the meta device load exactly ---------------------------------------------------
CELL_KINDS = ["lstm", "rnn", "gru-reset-after", "gru"]
LAYER_KEYS = {  # state_dict names of each layer: saved checkpoints rely on them
    "lstm": ["weight_ih", "weight_hh", "bias"],
    "rnn": ["weight_ih", "weight_hh", "bias"],
    "gru-reset-after": ["weight_ih", "weight_hh", "bias", "recurrent_bias"],
    "gru": ["gate_kernel", "gate_bias", "candidate_kernel", "candidate_bias"],
}


def source_model(kind):
    torch.manual_seed(0)
    config = CharLMConfig(vocab_size=7, cell=kind, hidden_size=8, num_layers=2, embedding_size=4,
                          forget_bias=0.25)
    model = CharLM(config).eval()
    with torch.no_grad():  # non-zero biases, so that every bias reaches the logits
        for parameter in model.parameters():
            parameter.add_(torch.rand_like(parameter) - 0.5)
    return model


@pytest.mark.parametrize("kind", CELL_KINDS)
@pytest.mark.parametrize("assign", [False, True], ids=["to_empty", "assign"])
def test_a_model_made_on_the_meta_device_loads_exactly(kind, assign):
    source = source_model(kind)
    with torch.device("meta"):
        model = CharLM(source.config).eval()
    if not assign:
        model.to_empty(device="cpu")
    model.load_state_dict(source.state_dict(), assign=assign)
    ids = torch.randint(0, 7, (3, 6))
    for fused in (None, False):  # CharLM takes the fused kernels where the cell has them
        expected, _ = dynamic_rnn(source.rnn, source.embedding(ids), fused=fused)
        outputs, _ = dynamic_rnn(model.rnn, model.embedding(ids), fused=fused)
        torch.testing.assert_close(outputs, expected, rtol=0, atol=0)
    torch.testing.assert_close(model(ids)[0], source(ids)[0], rtol=0, atol=0)


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_state_dict_names_are_unchanged(kind):
    model = source_model(kind)
    layers = [f"rnn.cells.{layer}.{name}" for layer in range(2) for name in LAYER_KEYS[kind]]
    assert list(model.state_dict()) == ["embedding.weight", *layers, "head.weight", "head.bias"]
    assert list(model.buffers()) == []


def test_forget_bias_is_read_at_run_time_in_any_dtype():
    model = source_model("lstm").double()
    assert [cell.forget_bias for cell in model.rnn.cells] == [0.25, 0.25]
    ids = torch.randint(0, 7, (2, 5))
    embedded = model.embedding(ids)  # (B, T, E)
    torch.testing.assert_close(dynamic_rnn(model.rnn, embedded)[0], dynamic_rnn(model.rnn, embedded, fused=False)[0])
    for cell in model.rnn.cells:
        cell.forget_bias = -1.5
    changed = dynamic_rnn(model.rnn, embedded)[0]
    torch.testing.assert_close(changed, dynamic_rnn(model.rnn, embedded, fused=False)[0])
    assert changed.dtype == torch.float64


def test_the_kept_fused_constant_made_in_inference_mode_still_trains():
    cell = make_cell("lstm", 4, 3)
    inputs = torch.randn(2, 5, 3)
    with torch.inference_mode():
        expected, _ = dynamic_rnn(cell, inputs)
    outputs, _ = dynamic_rnn(cell, inputs)
    outputs.sum().backward()  # an inference tensor among the kernel's weights could not be saved
    torch.testing.assert_close(outputs.detach(), expected, rtol=0, atol=0)
    assert cell.weight_hh.grad is not None


# -- 4. torch.compile takes sequence lengths to the fused kernels -----------------------------------
@pytest.mark.parametrize("kind", ["lstm", "rnn"])
def test_compiled_fused_run_with_lengths_equals_eager(kind):
    cell = stack(kind, units=4)
    inputs = torch.randn(3, 5, 3)
    lengths = torch.tensor([5, 2, 0])

    def run(function):
        cell.zero_grad()
        x = inputs.clone().requires_grad_()
        outputs, state = function(x, lengths)
        (outputs.sum() + sum(leaf.pow(2).sum() for leaf in flatten_state(state))).backward()
        return [outputs, *flatten_state(state), x.grad, *(p.grad for p in cell.parameters())]

    def unrolled(x, sequence_length):
        return dynamic_rnn(cell, x, sequence_length=sequence_length)

    torch._dynamo.reset()
    compiled = run(torch.compile(unrolled, backend="eager"))
    for got, want in zip(compiled, run(unrolled), strict=True):
        torch.testing.assert_close(got, want)


# -- 5. hooks on a cell: what fires, as documented ----------------------------------------------------
def test_cell_hooks_fire_on_a_cell_call_not_in_dynamic_rnn():
    cell = make_cell("lstm", 4, 3)
    calls = []
    cell.register_forward_hook(lambda module, inputs, output: calls.append("cell"))
    cell(torch.randn(2, 3))
    assert calls == ["cell"]
    for fused in (None, False):
        dynamic_rnn(cell, torch.randn(2, 5, 3), fused=fused)
    assert calls == ["cell"]
    for documented in (dynamic_rnn.__doc__, RNNCell.__doc__):
        assert "hook" in documented


# -- 6. no process-wide settings changed by importing the library -----------------------------------
def test_importing_the_library_installs_no_warning_filter():
    run = run_isolated("""
        import warnings
        before = list(warnings.filters)
        import charrnn, charrnn.fused, charrnn.model, charrnn.sampling
        print([str(entry) for entry in warnings.filters if entry not in before])
    """)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[]"


def test_cudnn_weight_warning_is_silenced_for_the_kernel_call_only():
    from charrnn.fused import _call_kernel

    class CudaLike:  # what _call_kernel reads of a CUDA tensor; no GPU needed
        is_cuda = True

    def kernel(inputs, value):
        warnings.warn("RNN module weights are not part of single contiguous chunk of memory.")
        warnings.warn("another warning")
        return value

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _call_kernel(kernel, CudaLike(), 7) == 7
        filters = list(warnings.filters)
    assert [str(warning.message) for warning in caught] == ["another warning"]
    assert filters[0][0] == "always"  # the caller's own filters are back as they were
