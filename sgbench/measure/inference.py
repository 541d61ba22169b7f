"""Everything measured on a model without training it: operations, energy and latency at batch 1
and at batch N, on the first samples of the test split."""
from __future__ import annotations

import resource
from typing import Any

import torch
from torch import nn

from ..data import encode
from .latency import measure_latency
from .ops import EnergyModel, count_ops


def measure_inference(model: nn.Module, x: torch.Tensor, T: int, encoding: str,
                      energy: EnergyModel, repeats: int = 30) -> dict[str, Any]:
    """Ops and energy per sample on batch ``x``, and latency for batch 1 and batch N."""
    torch.manual_seed(0)  # Poisson encoding draws spikes: the same ones for every method
    x_seq = encode(x, T, encoding)
    ops = count_ops(model, x_seq, energy)
    latency = {"batch_1": measure_latency(model, x_seq[:, :1], repeats),
               "batch_n": measure_latency(model, x_seq, repeats)}
    return {"ops": ops, "latency": latency}


def headline(measured: dict[str, Any]) -> dict[str, Any]:
    """The flat fields a record's metrics and cost carry."""
    ops, lat = measured["ops"], measured["latency"]
    return {
        "metrics": {"synops": ops["synops"], "macs": ops["macs"], "energy_uj": ops["energy_uj"],
                    "energy_paper_uj": ops["paper"]["energy_uj"]},
        "cost": {"latency_b1_p50_ms": lat["batch_1"]["p50_ms"],
                 "latency_b1_p95_ms": lat["batch_1"]["p95_ms"],
                 "latency_bn_p50_ms": lat["batch_n"]["p50_ms"],
                 "latency_bn_p95_ms": lat["batch_n"]["p95_ms"],
                 "latency_bn_batch": lat["batch_n"]["batch"]},
    }


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: the most memory torch allocated; CPU: the process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
