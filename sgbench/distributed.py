"""Data-parallel runs under torchrun: one process per GPU (NCCL) or per CPU slot (Gloo).

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE. A run started so joins the process group, shards
the training set with a DistributedSampler and the test set by stride, trains a
DistributedDataParallel wrapper of the model, sums its metrics over the ranks, and lets rank 0
alone write checkpoints and the record. The task's batch size stays the global batch, so a
recipe means the same at any world size: each rank takes batch_size / world_size.
BatchNorm statistics are rank 0's (DDP broadcasts its buffers at each training forward, and
sgbench before every test and search).
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.distributed as dist
from torch import nn

from .errors import UsageError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    backend: str | None = None  # None: a single-process run

    @property
    def enabled(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> dict:
        return {"world_size": self.world_size, "backend": self.backend}


def launched_by_torchrun() -> bool:
    return all(key in os.environ for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))


def join(device: torch.device) -> tuple[Dist, torch.device]:
    """Join torchrun's process group (if launched by it); returns this rank's view and device."""
    if not launched_by_torchrun():
        return Dist(), device
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return Dist(rank, world, backend), device


def leave(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def rank_batch(batch_size: int, d: Dist) -> int:
    if batch_size % d.world_size:
        raise UsageError(f"train.batch_size {batch_size} does not split over {d.world_size} "
                         "processes: make it a multiple of the world size")
    return batch_size // d.world_size


def wrap(model: nn.Module, d: Dist, device: torch.device) -> nn.Module:
    """The module that training steps call: DDP over ``model`` (whose parameters it shares)."""
    if not d.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    # find_unused_parameters: a method's rule may leave some of its parameters out of a step
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                   else None, find_unused_parameters=True)


def _reduce(values: Sequence[float], d: Dist, device: torch.device, op: str) -> list[float]:
    """``values`` combined over the ranks by the all-reduce ``op`` (SUM, MAX)."""
    if not d.enabled:
        return list(values)
    on = device if d.backend == "nccl" else torch.device("cpu")  # NCCL reduces on the GPU
    t = torch.tensor(list(values), dtype=torch.float64, device=on)
    dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
    return t.tolist()


def total(values: Sequence[float], d: Dist, device: torch.device) -> list[float]:
    """Each value summed over the ranks."""
    return _reduce(values, d, device, "SUM")


def any_rank(flags: Sequence[bool], d: Dist, device: torch.device) -> list[bool]:
    """Each flag, true where it is true on any rank (so that every rank takes the same branch)."""
    return [v > 0 for v in _reduce([float(f) for f in flags], d, device, "MAX")]


def sync_buffers(model: nn.Module, d: Dist) -> None:
    """Rank 0's buffers (BatchNorm statistics, a method's running state) on every rank. DDP
    copies them only at a training forward, so each rank's last step leaves its own."""
    if d.enabled:
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()
