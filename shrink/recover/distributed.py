"""Running under torchrun: process-group set-up from its environment, and the few collectives the
loop needs. There is no launcher here on purpose: `torchrun` starts the processes (on one machine
or many) and sets RANK, LOCAL_RANK and WORLD_SIZE; without them everything is a 1-process no-op.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist

from shrink.errors import ShrinkError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only the main process writes checkpoints, results and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def main_process_by_env() -> bool:
    """Rank 0 by torchrun's environment (usable before the process group exists)."""
    return int(os.environ.get("RANK", "0")) == 0


def current_context() -> DistContext:
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return DistContext()


def resolve_device(device: str, ctx: DistContext | None = None) -> str:
    """'auto' means CUDA when present; under torchrun each process takes the GPU of its LOCAL_RANK."""
    ctx = ctx or current_context()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and ctx.distributed:
        device = f"cuda:{ctx.local_rank}"
    return device


@contextlib.contextmanager
def distributed_session(device: str = "auto") -> Iterator[DistContext]:
    """Join the process group torchrun describes (nccl for GPUs, gloo for CPUs) for the duration of
    the block, unless the caller already did or this is a plain 1-process run."""
    if not launched_by_torchrun() or (dist.is_available() and dist.is_initialized()):
        yield current_context()
        return
    if not dist.is_available():
        raise ShrinkError("this torch build has no torch.distributed; run without torchrun")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise ShrinkError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs here; "
                              "give torchrun --nproc_per_node <= the number of GPUs")
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    try:
        yield current_context()
    finally:
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], device: str) -> list[float]:
    """Sum a few numbers over all processes (identity in a 1-process run)."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def broadcast_from_main(obj: Any) -> Any:
    """rank 0's `obj` on every process (identity in a 1-process run)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
