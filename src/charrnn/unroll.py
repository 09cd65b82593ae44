"""The unroller: ``dynamic_rnn`` runs any cell over time (TensorFlow 1's ``tf.nn.dynamic_rnn``);
``bidirectional_dynamic_rnn`` runs one cell forward and another backward over each sequence's
own length (``tf.nn.bidirectional_dynamic_rnn``), with ``reverse_sequence`` between them."""

from __future__ import annotations

import operator

import torch

from charrnn.cells import MultiRNNCell, RNNCell
from charrnn.dropout import draws_own_mask, dropout
from charrnn.fused import fused_layers, run_fused


def map_state(function, *states):
    """Apply ``function`` leaf by leaf to states of one structure (tensors, tuples, namedtuples)."""
    first = states[0]
    if isinstance(first, torch.Tensor):
        return function(*states)
    mapped = [map_state(function, *parts) for parts in zip(*states)]
    return type(first)(*mapped) if hasattr(first, "_fields") else type(first)(mapped)


def flatten_state(state) -> list[torch.Tensor]:
    """The tensors of a state structure, in a fixed order (depth first, as :func:`map_state` visits)."""
    leaves: list[torch.Tensor] = []
    map_state(lambda tensor: leaves.append(tensor) or tensor, state)
    return leaves


def rebuild_state(template, leaves):
    """``template``'s structure holding ``leaves`` (in :func:`flatten_state`'s order).

    Each leaf is moved to its template tensor's device and dtype.
    """
    leaves = list(leaves)
    expected = len(flatten_state(template))
    if len(leaves) != expected:
        raise ValueError(f"the state structure holds {expected} tensors, got {len(leaves)}")
    iterator = iter(leaves)
    return map_state(lambda tensor: next(iterator).to(tensor.device, tensor.dtype), template)


def check_state(cell: RNNCell, state, batch: int, dtype: torch.dtype, device: torch.device):
    """``state`` checked against ``cell`` for ``batch`` sequences; returns it with each LSTM pair
    as :class:`~charrnn.cells.LSTMStateTuple`.

    The structure must follow ``cell.state_size``: a tensor ``(batch, units)`` per size, an
    LSTM's ``(c, h)`` pair (a plain tuple too: TensorFlow 1 unpacks ``c, h = state``), a stack's
    tuple with one entry per layer. Every tensor must have ``dtype`` (or, under autocast,
    autocast's, in which the kernels return states) and live on ``device``. The fused kernels
    read memory by the sizes they are told, so a mismatch must be caught before them: it is a
    ``ValueError`` naming the part at fault.
    """
    try:
        return _check_cell_state(cell, state, (batch, dtype, device))
    except _Mismatch as mismatch:
        where = ": " + "'s ".join(reversed(mismatch.where)) if mismatch.where else ""
        raise ValueError(f"initial_state{where} {mismatch.problem}") from None


class _Mismatch(Exception):
    """What is wrong with a part of a state; each level above adds its name to ``where``.

    The checks run on every ``dynamic_rnn`` call with a state, so the path to a part is only
    put together on the way to an error.
    """

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem, self.where = problem, []


def _check_cell_state(cell: RNNCell, state, expected):
    if not isinstance(cell, MultiRNNCell):
        return _check_sized_state(cell.state_size, state, expected)
    cells = cell.cells
    if not isinstance(state, (tuple, list)) or len(state) != len(cells):
        raise _structure_mismatch(state, f"a tuple of {len(cells)} (one per layer)")
    layer_states = []
    for layer, (layer_cell, layer_state) in enumerate(zip(cells, state)):
        try:
            layer_states.append(_check_cell_state(layer_cell, layer_state, expected))
        except _Mismatch as mismatch:
            mismatch.where.append(f"layer {layer}")
            raise
    return tuple(layer_states)


def _check_sized_state(size, state, expected):
    """Check ``state`` against a (nested) ``state_size``; a size of another kind is not checked."""
    if isinstance(size, int):
        return _check_leaf(state, size, expected)
    if not isinstance(size, tuple):
        return state
    fields = getattr(size, "_fields", None)
    if not isinstance(state, (tuple, list)) or len(state) != len(size):
        pair = fields is not None and len(fields) == 2
        raise _structure_mismatch(state, f"a ({', '.join(fields)}) pair" if pair else f"a tuple of {len(size)}")
    parts = []
    for index, (part_size, part) in enumerate(zip(size, state)):
        try:
            parts.append(_check_sized_state(part_size, part, expected))
        except _Mismatch as mismatch:
            mismatch.where.append(fields[index] if fields else f"entry {index}")
            raise
    if type(state) is type(size) and all(map(operator.is_, parts, state)):
        return state  # already in shape: spare a rebuild
    return type(size)(*parts) if fields else tuple(parts)


def _check_leaf(state, units: int, expected) -> torch.Tensor:
    batch, dtype, device = expected
    if not isinstance(state, torch.Tensor):
        raise _Mismatch(f"is a {type(state).__name__}, expected a tensor")
    if state.shape != (batch, units):
        raise _Mismatch(f"has shape {list(state.shape)}, expected [{batch}, {units}] (batch {batch}, {units} units)")
    if state.dtype != dtype and state.dtype != _autocast_dtype(device):
        raise _Mismatch(f"has dtype {state.dtype}, expected {dtype} (the inputs')")
    if state.device != device:
        raise _Mismatch(f"is on {state.device}, expected {device} (the inputs' device)")
    return state


def _autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Autocast's dtype where it is on for ``device``: the kernels return states in it."""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return None


def _structure_mismatch(state, expected: str) -> _Mismatch:
    if isinstance(state, (tuple, list)):
        return _Mismatch(f"holds {len(state)} entries, expected {expected}")
    return _Mismatch(f"is a {type(state).__name__}, expected {expected}")


def _check_sequence_length(sequence_length, batch: int, steps: int, device) -> torch.Tensor:
    lengths = torch.as_tensor(sequence_length, device=device)
    if lengths.dtype.is_floating_point or lengths.shape != (batch,):
        raise ValueError(f"sequence_length must hold {batch} integers (one per sequence), "
                         f"got shape {list(lengths.shape)} of {lengths.dtype}")
    if bool((lengths < 0).any()) or bool((lengths > steps).any()):
        raise ValueError(f"sequence_length values must lie in [0, {steps}], got {lengths.tolist()}")
    return lengths.long()


def _run_steps(cell: RNNCell, inputs: torch.Tensor, sequence_length, state):
    """The step loop: the input projection of all time steps is one matmul, then T steps."""
    batch, steps, _ = inputs.shape
    if steps == 0:
        return inputs.new_zeros(batch, 0, cell.output_size), state
    projected = cell.project_inputs(inputs)  # (B, T, k·N)
    valid = None
    if sequence_length is not None:
        valid = torch.arange(steps, device=inputs.device) < sequence_length.unsqueeze(1)  # (B, T)
    outputs = []
    for t in range(steps):
        output, new_state = cell.step(projected[:, t], state)
        if valid is not None:
            # TensorFlow's rule past a sequence's end: output exactly 0, state copied through.
            keep = valid[:, t].unsqueeze(1)  # (B, 1)
            output = torch.where(keep, output, torch.zeros((), dtype=output.dtype, device=output.device))
            new_state = map_state(lambda new, old: torch.where(keep, new, old), new_state, state)
        outputs.append(output)
        state = new_state
    return torch.stack(outputs, dim=1), state  # (B, T, N)


def dynamic_rnn(cell: RNNCell, inputs: torch.Tensor, sequence_length=None, initial_state=None,
                dtype: torch.dtype | None = None, fused: bool | None = None):
    """Run ``cell`` over batch-major ``inputs`` ``(B, T, D)``.

    Parameters
    ----------
    cell : RNNCell
        Any cell or :class:`~charrnn.cells.MultiRNNCell`; built from ``D`` if not yet built.
    inputs : tensor or array, ``(B, T, D)``
    sequence_length : ints ``(B,)``, optional
        Valid steps of each sequence. Past it the output is exactly 0 and the state is copied
        through, so the final state is the one after the last valid step (the initial state
        for length 0).
    initial_state : optional
        The cell's state for ``B`` sequences, in ``inputs``' dtype and device; zeros when
        omitted. An LSTM's may be a plain ``(c, h)`` tuple. It is checked first (see
        :func:`check_state`): a wrong structure, size, dtype or device is a ``ValueError``.
    dtype : torch.dtype, optional
        Converts ``inputs`` (TensorFlow's ``dtype`` argument), e.g. ``torch.float32``.
    fused : bool, optional
        None (default) takes PyTorch's fused kernels when the cell allows it, True requires
        them, False forces the step loop.

    Returns
    -------
    outputs : ``(B, T, cell.output_size)``
    final_state : the cell's state structure, LSTM pairs as :class:`~charrnn.cells.LSTMStateTuple`

    Notes
    -----
    The cell is not called as a module: the step loop calls its :meth:`~RNNCell.project_inputs`
    and :meth:`~RNNCell.step`, and the fused path hands its weights to PyTorch's kernels, which
    spares ``Module.__call__``'s cost on every step. So forward hooks and forward pre-hooks on a
    cell (or registered for all modules), and its module backward hooks, do not fire here; they
    do fire when the cell is called for one step, ``cell(x_t, state)``. Hooks on the module
    that calls ``dynamic_rnn`` (such as :class:`~charrnn.model.CharLM`) and on tensors
    (``cell.weight_hh.register_hook``) fire as usual: to watch the cell, read the outputs and
    final state returned here, or hook the calling module.
    """
    inputs = torch.as_tensor(inputs)
    if dtype is not None or not inputs.is_floating_point():
        inputs = inputs.to(dtype or torch.get_default_dtype())
    if inputs.dim() != 3:
        raise ValueError(f"inputs must be batch-major (B, T, D), got shape {list(inputs.shape)}")
    batch, steps, depth = inputs.shape
    cell.build(depth, inputs.dtype, inputs.device)  # a no-op once built, but checks the size
    if sequence_length is not None:
        sequence_length = _check_sequence_length(sequence_length, batch, steps, inputs.device)
    if initial_state is None:
        state = cell.zero_state(batch, inputs.dtype, inputs.device)
    else:
        state = check_state(cell, initial_state, batch, inputs.dtype, inputs.device)
    return _unroll(cell, inputs, sequence_length, state, fused)


def _unroll(cell: RNNCell, inputs: torch.Tensor, sequence_length, state, fused):
    """``dynamic_rnn`` past its checks: one fused call when the cell allows it, else step by step."""
    layers = fused_layers(cell) if fused is not False else None
    if fused and layers is None:
        raise ValueError(f"{type(cell).__name__} has no fused form; use fused=None or False")
    # A stack that drops out between its layers runs layer by layer on a CPU, where our mask
    # is cheaper than the one the fused call would draw (charrnn.dropout).
    own_dropout = isinstance(cell, MultiRNNCell) and cell.training and cell.dropout > 0 \
        and draws_own_mask(inputs.device)
    if layers is not None and inputs.shape[1] > 0 and not own_dropout:
        return run_fused(cell, layers, inputs, sequence_length, state)
    if isinstance(cell, MultiRNNCell):
        return _run_stack(cell, inputs, sequence_length, state, fused)
    return _run_steps(cell, inputs, sequence_length, state)


def _run_stack(cell: MultiRNNCell, inputs, sequence_length, state, fused):
    """A stack that no single fused call can run (or that drops out between its layers on a
    CPU): layer by layer, each on its fastest path.

    Running whole layers one after another gives the same numbers as TensorFlow's
    step-interleaved order, and lets each layer hoist its input projection.
    """
    outputs, final_states = inputs, []
    for layer, (layer_cell, layer_state) in enumerate(zip(cell.cells, state)):
        if layer > 0:
            outputs = dropout(outputs, cell.dropout, cell.training)
        outputs, final_state = _unroll(layer_cell, outputs, sequence_length, layer_state,
                                       fused=False if fused is False else None)  # (B, T, N)
        final_states.append(final_state)
    return outputs, tuple(final_states)


def reverse_sequence(inputs: torch.Tensor, sequence_length=None) -> torch.Tensor:
    """Reverse each sequence of batch-major ``inputs`` ``(B, T, ...)`` within its own length.

    TensorFlow's ``tf.reverse_sequence(inputs, sequence_length, seq_axis=1, batch_axis=0)``:
    row ``b``'s first ``sequence_length[b]`` steps come in reverse order and the steps past
    them stay where they are. Without ``sequence_length`` every row is reversed whole.
    """
    inputs = torch.as_tensor(inputs)
    if inputs.dim() < 2:
        raise ValueError(f"inputs must be batch-major (B, T, ...), got shape {list(inputs.shape)}")
    batch, steps = inputs.shape[:2]
    if sequence_length is None:
        return inputs.flip(1)
    lengths = _check_sequence_length(sequence_length, batch, steps, inputs.device)
    positions = torch.arange(steps, device=inputs.device).expand(batch, steps)  # (B, T)
    source = torch.where(positions < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - positions, positions)
    source = source.view(batch, steps, *([1] * (inputs.dim() - 2))).expand_as(inputs)
    return inputs.gather(1, source)


def bidirectional_dynamic_rnn(cell_fw: RNNCell, cell_bw: RNNCell, inputs: torch.Tensor, sequence_length=None,
                              initial_state_fw=None, initial_state_bw=None, dtype: torch.dtype | None = None,
                              fused: bool | None = None):
    """Run ``cell_fw`` forward and ``cell_bw`` backward over batch-major ``inputs`` ``(B, T, D)``.

    TensorFlow 1's ``tf.nn.bidirectional_dynamic_rnn``: the backward pass reads each sequence
    reversed *within its own length* (:func:`reverse_sequence`), so its first step is the
    sequence's last valid step whatever padding follows; its outputs are reversed back, so
    ``output_bw[:, t]`` is the backward cell's output having read steps ``t .. length-1``. Each
    direction is a :func:`dynamic_rnn` call (fused when its cell allows, see ``fused``); a
    stack (:class:`~charrnn.cells.MultiRNNCell`) in either direction runs its layers in that
    direction only, as TensorFlow's does.

    Parameters
    ----------
    cell_fw, cell_bw : RNNCell
        Any cells (or stacks); they need not be of one kind or size.
    inputs : tensor ``(B, T, D)``
    sequence_length : ints ``(B,)``, optional
        Past a sequence's length both directions output exactly 0.
    initial_state_fw, initial_state_bw : optional
        Each cell's initial state, checked as :func:`dynamic_rnn` checks it; zeros when omitted.
    dtype, fused :
        As for :func:`dynamic_rnn`.

    Returns
    -------
    outputs : ``(output_fw (B, T, cell_fw.output_size), output_bw (B, T, cell_bw.output_size))``
    output_states : ``(state_fw, state_bw)``; ``state_bw`` is the backward cell's state after
        reading the sequence back to its first step.

    Examples
    --------
    >>> from charrnn.cells import BasicRNNCell
    >>> x = torch.ones(2, 3, 4)
    >>> (out_fw, out_bw), (state_fw, state_bw) = bidirectional_dynamic_rnn(
    ...     BasicRNNCell(5), BasicRNNCell(6), x, sequence_length=[3, 1])
    >>> tuple(out_fw.shape), tuple(out_bw.shape), bool((out_bw[1, 1:] == 0).all())
    ((2, 3, 5), (2, 3, 6), True)
    """
    inputs = torch.as_tensor(inputs)
    if dtype is not None or not inputs.is_floating_point():
        inputs = inputs.to(dtype or torch.get_default_dtype())
    if inputs.dim() != 3:
        raise ValueError(f"inputs must be batch-major (B, T, D), got shape {list(inputs.shape)}")
    if sequence_length is not None:
        sequence_length = _check_sequence_length(sequence_length, inputs.shape[0], inputs.shape[1], inputs.device)
    output_fw, state_fw = dynamic_rnn(cell_fw, inputs, sequence_length, initial_state_fw, fused=fused)
    reversed_inputs = reverse_sequence(inputs, sequence_length)  # (B, T, D), each row within its length
    reversed_bw, state_bw = dynamic_rnn(cell_bw, reversed_inputs, sequence_length, initial_state_bw, fused=fused)
    output_bw = reverse_sequence(reversed_bw, sequence_length)  # (B, T, N_bw), back in reading order
    return (output_fw, output_bw), (state_fw, state_bw)
