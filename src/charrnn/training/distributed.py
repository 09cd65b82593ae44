"""A training process's place among ``torchrun``'s processes.

``torchrun --nproc_per_node=N -m charrnn train ...`` starts N processes and tells each its
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` through the environment. Each joins one process
group (gloo on CPU, NCCL on CUDA), trains a :class:`DistributedDataParallel` copy of the model
on its own streams of text, and only rank 0 writes files. A lone process needs none of this:
every function here is then a no-op.

Exchanges never pickle: tensors travel as tensors and JSON as UTF-8 bytes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from charrnn.errors import CharRNNError


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a run: ``rank`` of ``world_size``, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_distributed(self) -> bool:
        """Whether several processes train together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes the files (rank 0)."""
        return self.rank == 0


def detect_context(environ=None) -> DistributedContext:
    """Read ``torchrun``'s environment; a plain process is rank 0 of 1."""
    environ = os.environ if environ is None else environ
    try:
        world_size = int(environ.get("WORLD_SIZE", "1"))
        rank = int(environ.get("RANK", "0"))
        local_rank = int(environ.get("LOCAL_RANK", str(rank)))
        local_world_size = int(environ.get("LOCAL_WORLD_SIZE", str(world_size)))
    except ValueError as error:
        raise CharRNNError(f"bad torchrun environment ({error})") from None
    if not 0 <= rank < world_size:
        raise CharRNNError(f"bad torchrun environment: RANK={rank} with WORLD_SIZE={world_size}")
    return DistributedContext(rank, world_size, local_rank, local_world_size)


def start(context: DistributedContext, device: torch.device) -> None:
    """Join the process group (gloo on CPU, NCCL on CUDA); nothing for a lone process."""
    if not context.is_distributed or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend=backend, rank=context.rank, world_size=context.world_size)
    except (RuntimeError, ValueError) as error:
        raise CharRNNError(f"cannot join the {backend} process group as rank {context.rank} of "
                           f"{context.world_size}: {str(error).splitlines()[0]}", exit_code=1) from None


def stop(context: DistributedContext) -> None:
    """Leave the process group."""
    if context.is_distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(context: DistributedContext) -> None:
    """Wait until every process gets here."""
    if context.is_distributed:
        dist.barrier()


def all_reduce_mean(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """The mean of ``values`` over the processes (a new tensor; ``values`` is left alone)."""
    if not context.is_distributed:
        return values
    reduced = values.clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced / context.world_size


def broadcast_json(value, context: DistributedContext, device: torch.device):
    """Rank 0's ``value`` (anything JSON can hold), on every process."""
    if not context.is_distributed:
        return value
    payload = json.dumps(value).encode("utf-8") if context.is_main else b""
    length = torch.tensor([len(payload)], dtype=torch.int64, device=device)
    dist.broadcast(length, src=0)
    buffer = torch.zeros(int(length.item()), dtype=torch.uint8, device=device)
    if context.is_main:
        buffer.copy_(torch.frombuffer(bytearray(payload), dtype=torch.uint8))
    dist.broadcast(buffer, src=0)
    return json.loads(bytes(buffer.cpu().tolist()).decode("utf-8"))


def gather_tensors(tensors: dict[str, torch.Tensor], context: DistributedContext,
                   device: torch.device) -> list[dict[str, torch.Tensor]]:
    """Every process's ``tensors`` (same names and shapes on each), in rank order, on the CPU."""
    if not context.is_distributed:
        return [{name: tensor.cpu() for name, tensor in tensors.items()}]
    gathered: list[dict[str, torch.Tensor]] = [{} for _ in range(context.world_size)]
    for name in sorted(tensors):
        local = tensors[name].to(device).contiguous()
        parts = [torch.empty_like(local) for _ in range(context.world_size)]
        dist.all_gather(parts, local)
        for rank, part in enumerate(parts):
            gathered[rank][name] = part.cpu()
    return gathered


def wrap_model(model: torch.nn.Module, context: DistributedContext, device: torch.device) -> torch.nn.Module:
    """``model`` in :class:`DistributedDataParallel` when several processes train, else itself."""
    if not context.is_distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)
