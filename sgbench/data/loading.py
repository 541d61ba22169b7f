"""Batches for training and testing: tensor-held datasets are gathered on the training device
(``tensors.TensorLoader``); large ones (ImageNet, event data) stream through a DataLoader with
``train.workers`` processes (``auto``: one per CPU core available, at most 8)."""
from __future__ import annotations

import os
import signal
from typing import Any, Iterable

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Subset

from ..errors import UsageError
from .tensors import TensorLoader, TensorSplit

MAX_AUTO_WORKERS = 8


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_workers(value: Any) -> int:
    """``train.workers``: ``auto`` or a count >= 0."""
    if value == "auto":
        return min(available_cpus(), MAX_AUTO_WORKERS)
    if isinstance(value, str) and value.isdigit():  # from -o train.workers=N
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"train.workers must be 'auto' or an integer >= 0; got {value!r}")
    return value


def on_device(dataset: Dataset | TensorSplit, device: torch.device) -> Dataset | TensorSplit:
    """A tensor-held split moved to the training device (the whole set sits in GPU memory on
    CUDA); any other dataset as it is."""
    return dataset.to(device) if isinstance(dataset, TensorSplit) else dataset


def shard(dataset: Dataset | TensorSplit, rank: int, world_size: int) -> Dataset | TensorSplit:
    """Every world_size-th sample from ``rank``: the shards cover the set exactly once."""
    if world_size == 1:
        return dataset
    index = range(rank, len(dataset), world_size)
    return dataset.subset(list(index)) if isinstance(dataset, TensorSplit) \
        else Subset(dataset, index)


def ignore_stop_signals(worker_id: int) -> None:
    """In a loader process: SIGINT and SIGTERM are the main process's to handle (it finishes
    its step, writes its record and then ends the workers), also when a scheduler signals the
    whole process group."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def train_batches(dataset: Dataset | TensorSplit, batch_size: int, generator: torch.Generator,
                  workers: int, drop_last: bool = False, rank: int = 0, world_size: int = 1
                  ) -> Iterable:
    """Shuffled (seeded by ``generator``) training batches of this rank's shard. A streamed
    dataset resumes exactly when its transforms draw no random numbers: its loader processes keep
    their own random streams across epochs."""
    if isinstance(dataset, TensorSplit):
        return TensorLoader(dataset, batch_size, True, generator, drop_last, rank, world_size)
    seed = int(generator.initial_seed())
    sampler = DistributedSampler(dataset, world_size, rank, seed=seed) if world_size > 1 \
        else RandomSampler(dataset, generator=generator)
    # the workers' seeds come from a generator of their own, so that the shuffle, which the
    # checkpoint keeps, is the same in a resumed run
    return DataLoader(dataset, batch_size, sampler=sampler,
                      generator=torch.Generator().manual_seed(seed + 1), num_workers=workers,
                      persistent_workers=workers > 0, drop_last=drop_last,
                      worker_init_fn=ignore_stop_signals)


def test_batches(dataset: Dataset | TensorSplit, batch_size: int, workers: int) -> Iterable:
    if isinstance(dataset, TensorSplit):
        return TensorLoader(dataset, batch_size)
    return DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                      worker_init_fn=ignore_stop_signals)


def describe(dataset: Dataset | TensorSplit, workers: int) -> dict[str, Any]:
    """How batches reach the model, for the record."""
    if isinstance(dataset, TensorSplit):
        return {"kind": "tensor", "device": str(dataset.device), "workers": 0}
    return {"kind": "dataloader", "workers": workers}


def first_samples(dataset: Dataset | TensorSplit, n: int, device: torch.device) -> torch.Tensor:
    """The first ``n`` samples as one batch, not augmented (the same for every method)."""
    n = min(n, len(dataset))
    if isinstance(dataset, TensorSplit):
        return dataset.batch(torch.arange(n))[0].to(device)
    return torch.stack([dataset[i][0] for i in range(n)]).to(device)


def samples(dataset: Dataset | TensorSplit, index: torch.Tensor) -> tuple[torch.Tensor,
                                                                          torch.Tensor]:
    """Samples ``index`` as a batch (inputs, labels), not augmented."""
    if isinstance(dataset, TensorSplit):
        return dataset.batch(index)
    xs, ys = zip(*(dataset[i] for i in index.tolist()))
    return torch.stack(xs), torch.as_tensor(ys)
