"""Inference latency of a full T-step forward: after warm-up, synchronised on CUDA, p50 and p95
over many timed passes."""
from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch
from spikingjelly.activation_based import functional
from torch import nn

from ..checkpoint import StopRequested, stop_requested


@torch.no_grad()
def measure_latency(model: nn.Module, x_seq: torch.Tensor, repeats: int = 30, warmup: int = 5
                    ) -> dict[str, Any]:
    """Milliseconds per forward of ``x_seq`` [T, N, ...] in eval mode."""
    sync = torch.cuda.synchronize if x_seq.is_cuda else (lambda: None)
    was_training = model.training
    model.eval()
    times = []
    try:
        for i in range(warmup + repeats):
            if stop_requested():  # a stop signal ends the measurement too
                raise StopRequested
            sync()
            start = time.perf_counter()
            model(x_seq)
            sync()
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
            functional.reset_net(model)
    finally:
        model.train(was_training)
    return {"batch": int(x_seq.shape[1]), "T": int(x_seq.shape[0]), "repeats": repeats,
            "warmup": warmup, "p50_ms": statistics.median(times),
            "p95_ms": float(np.percentile(times, 95)), "min_ms": min(times),
            "max_ms": max(times)}
