"""The unroller: ``dynamic_rnn`` runs any cell over time (TensorFlow 1's ``tf.nn.dynamic_rnn``)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from charrnn.cells import MultiRNNCell, RNNCell
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
        The cell's state for ``B`` sequences; zeros when omitted.
    dtype : torch.dtype, optional
        Converts ``inputs`` (TensorFlow's ``dtype`` argument), e.g. ``torch.float32``.
    fused : bool, optional
        None (default) takes PyTorch's fused kernels when the cell allows it, True requires
        them, False forces the step loop.

    Returns
    -------
    outputs : ``(B, T, cell.output_size)``
    final_state : the cell's state structure
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
    state = initial_state if initial_state is not None else cell.zero_state(batch, inputs.dtype, inputs.device)

    layers = fused_layers(cell) if fused is not False else None
    if fused and layers is None:
        raise ValueError(f"{type(cell).__name__} has no fused form; use fused=None or False")
    if layers is not None and steps > 0:
        return run_fused(cell, layers, inputs, sequence_length, state)
    if isinstance(cell, MultiRNNCell):
        return _run_stack(cell, inputs, sequence_length, state, fused)
    return _run_steps(cell, inputs, sequence_length, state)


def _run_stack(cell: MultiRNNCell, inputs, sequence_length, state, fused):
    """A stack that no single fused call can run: layer by layer, each on its fastest path.

    Running whole layers one after another gives the same numbers as TensorFlow's
    step-interleaved order, and lets each layer hoist its input projection.
    """
    outputs, final_states = inputs, []
    for layer, (layer_cell, layer_state) in enumerate(zip(cell.cells, state)):
        if layer > 0:
            outputs = F.dropout(outputs, cell.dropout, cell.training)
        outputs, final_state = dynamic_rnn(layer_cell, outputs, sequence_length, layer_state,
                                           fused=False if fused is False else None)
        final_states.append(final_state)
    return outputs, tuple(final_states)
