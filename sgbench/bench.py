"""`sgbench bench neuron`: forward+backward time of the engine against SpikingJelly and a plain loop.

All candidates see the same input and upstream gradient; rounds are interleaved (A, B, C, A, B,
C, ...) so drift in the machine affects every candidate alike, and the median is reported.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch
from spikingjelly.activation_based import functional, neuron, surrogate

from .neuron.node import SpikingNeuron
from .neuron.rules import FixedRule

Tensor = torch.Tensor


class _SigmoidSpike(torch.autograd.Function):
    """Heaviside forward, sigmoid(alpha x) derivative backward: the textbook autograd surrogate."""

    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(ctx.alpha * x)
        return grad * ctx.alpha * s * (1 - s), None


def plain_autograd_lif(x_seq: Tensor, tau: float, v_threshold: float, alpha: float) -> Tensor:
    """LIF (decay_input, hard reset to 0) as a Python loop over T with autograd through it all."""
    v, spikes = torch.zeros_like(x_seq[0]), []
    for x in x_seq:
        h = v + (x - v) / tau
        s = _SigmoidSpike.apply(h - v_threshold, alpha)
        spikes.append(s)
        v = h * (1 - s)
    return torch.stack(spikes)


def _time_step(forward: Callable[[Tensor], Tensor], x: Tensor, grad: Tensor, sync) -> float:
    x.grad = None
    sync()
    start = time.perf_counter()
    y = forward(x)
    y.backward(grad)
    sync()
    return time.perf_counter() - start


def bench_neuron(T: int = 4, neurons: int = 2_000_000, repeats: int = 15, warmup: int = 2,
                 device: str = "cpu", seed: int = 0) -> dict:
    """Median forward+backward seconds of each candidate and their ratios to sgbench."""
    torch.manual_seed(seed)
    dev = torch.device(device)
    x = (torch.randn(T, neurons, device=dev) * 1.5 + 0.5).requires_grad_(True)
    grad = torch.randn(T, neurons, device=dev)
    ours = SpikingNeuron(tau=2.0, rule=FixedRule("sigmoid", [4.0])).to(dev)
    sj = neuron.LIFNode(tau=2.0, surrogate_function=surrogate.Sigmoid(alpha=4.0),
                        step_mode="m").to(dev)

    def with_reset(module):
        def run(inp):
            functional.reset_net(module)
            return module(inp)
        return run

    candidates = {
        "sgbench (torch backend)": with_reset(ours),
        "spikingjelly LIFNode": with_reset(sj),
        "plain autograd loop": lambda inp: plain_autograd_lif(inp, 2.0, 1.0, 4.0),
    }
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for round_ in range(warmup + repeats):
        for name, fn in candidates.items():
            elapsed = _time_step(fn, x, grad, sync)
            if round_ >= warmup:
                times[name].append(elapsed)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    ours_s = medians["sgbench (torch backend)"]
    return {
        "T": T, "neurons_per_step": neurons, "device": str(dev), "repeats": repeats,
        "surrogate": "sigmoid(alpha=4)", "neuron": "LIF tau=2, decay_input, hard reset to 0",
        "results": [
            {"candidate": name, "median_s": med, "min_s": min(times[name]),
             "time_vs_sgbench": med / ours_s}
            for name, med in medians.items()
        ],
    }
