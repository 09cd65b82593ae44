"""What a trainer must save to continue exactly, as safetensors-ready tensors and JSON.

Each piece is saved and restored by its owner: the trainer's counters (:class:`TrainingState`),
the optimizer (:func:`optimizer_state_to_tensors`), the random generators
(:func:`random_state_tensors`), the task's data position and carried state (the task's own
``state_dict``). Nothing here pickles.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from charrnn.files import CheckpointError

#: Optimizer settings that say how, not what, it computes: a resumed run keeps this machine's.
IMPLEMENTATION_FLAGS = ("fused", "foreach", "capturable", "differentiable")


@dataclass
class TrainingState:
    """A trainer's counters.

    Attributes
    ----------
    step : int
        Optimizer steps taken in all (earlier sessions of a resumed run included).
    best_val_loss, last_val_loss : float or None
        The best and the last validation loss (nats).
    best_step, evaluated_step : int or None
        The steps of the best and of the last validation.
    evaluations_since_best : int
        Validations in a row that did not improve on the best (what ``--early-stop`` counts).
    elapsed : float
        Seconds of training of earlier sessions.
    window : list
        ``[sum, count]`` of the training losses since the last log line.
    """

    step: int = 0
    best_val_loss: float | None = None
    last_val_loss: float | None = None
    best_step: int | None = None
    evaluated_step: int | None = None
    evaluations_since_best: int = 0
    elapsed: float = 0.0
    window: tuple[float, int] = (0.0, 0)

    def state_dict(self) -> dict:
        """Plain values for JSON, under the names a checkpoint's ``trainer.json`` uses."""
        values = asdict(self)
        values["metrics_window"] = list(values.pop("window"))
        return values

    def load_state_dict(self, values: dict) -> None:
        """Continue from :meth:`state_dict`'s output (a ``KeyError`` or ``ValueError`` if damaged)."""
        self.step = int(values["step"])
        self.best_val_loss = _optional_float(values["best_val_loss"])
        self.last_val_loss = _optional_float(values["last_val_loss"])
        self.elapsed = float(values["elapsed"])
        # Checkpoints written before early stopping existed lack these.
        self.best_step = _optional_int(values.get("best_step"))
        self.evaluated_step = _optional_int(values.get("evaluated_step"))
        self.evaluations_since_best = int(values.get("evaluations_since_best", 0))
        total, count = values["metrics_window"]
        self.window = (float(total), int(count))


def _optional_float(value) -> float | None:
    return None if value is None else float(value)


def _optional_int(value) -> int | None:
    return None if value is None else int(value)


# -- the optimizer -------------------------------------------------------------------------------
def optimizer_state_to_tensors(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into safetensors-ready tensors and a JSON structure.

    Tensor ``state[i][name]`` becomes ``"state.<i>.<name>"``; the JSON keeps the other values
    and the param groups.
    """
    tensors, state = {}, {}
    for index, parameter_state in state_dict["state"].items():
        entry = {}
        for name, value in parameter_state.items():
            if isinstance(value, torch.Tensor):
                key = f"state.{index}.{name}"
                tensors[key] = value
                entry[name] = {"tensor": key}
            else:
                entry[name] = value
        state[str(index)] = entry
    return tensors, {"state": state, "param_groups": state_dict["param_groups"]}


def optimizer_state_from_tensors(tensors: dict[str, torch.Tensor], structure: dict, file: Path) -> dict:
    """Rebuild an optimizer ``state_dict`` from :func:`optimizer_state_to_tensors`'s output."""
    try:
        state = {}
        for index, entry in structure["state"].items():
            state[int(index)] = {name: tensors[value["tensor"]] if isinstance(value, dict) else value
                                 for name, value in entry.items()}
        groups = []
        for group in structure["param_groups"]:
            group = dict(group)
            if "betas" in group:
                group["betas"] = tuple(group["betas"])
            groups.append(group)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(f"{file}: optimizer state is damaged ({type(error).__name__}: {error})") from None
    return {"state": state, "param_groups": groups}


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], structure: dict,
                         file: Path) -> None:
    """Restore ``optimizer`` from a saved state, keeping this machine's implementation flags."""
    flags = [{key: group[key] for key in IMPLEMENTATION_FLAGS if key in group} for group in optimizer.param_groups]
    optimizer.load_state_dict(optimizer_state_from_tensors(tensors, structure, file))
    for group, kept in zip(optimizer.param_groups, flags):
        group.update(kept)


# -- random generators ---------------------------------------------------------------------------
def random_state_tensors() -> dict[str, torch.Tensor]:
    """Every random generator a trainer draws from (PyTorch's, on the CPU and each GPU) as tensors."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{index}"] = state
    return tensors


def restore_random_state(tensors: dict[str, torch.Tensor]) -> None:
    """Undo :func:`random_state_tensors` (CUDA generators only where the devices exist).

    Checkpoints written before also hold NumPy's global generator, which nothing draws from:
    it is left alone.
    """
    torch.set_rng_state(tensors["rng.torch"])
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            if f"rng.cuda.{index}" in tensors:
                torch.cuda.set_rng_state(tensors[f"rng.cuda.{index}"], index)
