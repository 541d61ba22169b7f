"""`sgbench bench neuron`: forward+backward time of the engine against SpikingJelly and a plain loop.

All candidates see the same input and upstream gradient; rounds are interleaved (A, B, C, A, B,
C, ...) so drift in the machine affects every candidate alike, and the median is reported.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Callable

import torch
from spikingjelly.activation_based import functional, neuron, surrogate

from ..neuron.cupy_backend import cupy_available
from ..neuron.node import SpikingNeuron, used_backend
from ..neuron.numba_backend import numba_available
from ..neuron.rules import FixedRule
from ..neuron.shapes import get_shape

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


class _CustomSigmoid(surrogate.Sigmoid):
    """The same Sigmoid as a user-defined class: SpikingJelly 2.x runs it on its reference path."""


# The built-in sigmoid's torch functions as a plugin's own shape: no CUDA source of its own, so
# the cupy backend runs it through the precomputed surrogate.
PLUGIN_SIGMOID = dataclasses.replace(get_shape("sigmoid"), name="plugin_sigmoid")


def _with_reset(module):
    def run(inp):
        functional.reset_net(module)
        return module(inp)
    return run


def neuron_candidates(dev: torch.device) -> dict[str, Callable[[Tensor], Tensor]]:
    """Every neuron implementation to time on ``dev``: sgbench's backends, SpikingJelly's
    LIFNode with its built-in (fused on CUDA) and a custom (unfused) Sigmoid, a plain loop."""
    def ours(backend, shape="sigmoid"):
        return _with_reset(SpikingNeuron(tau=2.0, backend=backend,
                                         rule=FixedRule(shape, [4.0])).to(dev))

    def theirs(sg):
        return _with_reset(neuron.LIFNode(tau=2.0, surrogate_function=sg, step_mode="m").to(dev))

    out = {}
    if dev.type == "cuda" and cupy_available():
        out["sgbench (cupy backend)"] = ours("cupy")
        out["sgbench (cupy backend), plugin shape"] = ours("cupy", PLUGIN_SIGMOID)
    if dev.type == "cpu" and numba_available():
        out["sgbench (numba backend)"] = ours("auto")
    out["sgbench (torch backend)"] = ours("torch")
    out["spikingjelly LIFNode"] = theirs(surrogate.Sigmoid(alpha=4.0))
    if dev.type == "cuda":
        out["spikingjelly LIFNode, custom surrogate"] = theirs(_CustomSigmoid(alpha=4.0))
    out["plain autograd loop"] = lambda inp: plain_autograd_lif(inp, 2.0, 1.0, 4.0)
    return out


def bench_neuron(T: int = 4, neurons: int = 2_000_000, repeats: int = 15, warmup: int = 2,
                 device: str = "cpu", seed: int = 0, dtype: torch.dtype = torch.float32) -> dict:
    """Median forward+backward seconds of each candidate, their ratios to sgbench's fastest
    backend, and the memory bandwidth each achieves on the bytes a fused LIF must move
    (forward: read X, write S and H in fp32; backward: read H and dL/dS, write dL/dX)."""
    torch.manual_seed(seed)
    dev = torch.device(device)
    x = (torch.randn(T, neurons, device=dev) * 1.5 + 0.5).to(dtype).requires_grad_(True)
    grad = torch.randn(T, neurons, device=dev).to(dtype)
    candidates = neuron_candidates(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    moved = T * neurons * (4 * x.element_size() + 8)
    copy = _copier(moved, dev, sync)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    copies = []
    for round_ in range(warmup + repeats):
        for name, fn in candidates.items():
            elapsed = _time_step(fn, x, grad, sync)
            if round_ >= warmup:
                times[name].append(elapsed)
        elapsed = copy()
        if round_ >= warmup:
            copies.append(elapsed)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    reference = medians[next(iter(candidates))]
    limit = statistics.median(copies)
    return {
        "T": T, "neurons_per_step": neurons, "device": str(dev), "repeats": repeats,
        "dtype": str(dtype).split(".")[-1], "bytes_moved": moved,
        "surrogate": "sigmoid(alpha=4)", "neuron": "LIF tau=2, decay_input, hard reset to 0",
        "memory_bound_s": limit,
        "results": [
            {"candidate": name, "median_s": med, "min_s": min(times[name]),
             "time_vs_sgbench": med / reference, "gb_per_s": moved / med / 1e9,
             "time_vs_memory_bound": med / limit}
            for name, med in medians.items()
        ],
    }


def _copier(moved: int, dev: torch.device, sync) -> Callable[[], float]:
    """The memory-bound limit: a copy of a buffer, reading and writing ``moved`` bytes in all,
    on ``dev`` (the same thread count as the candidates); timed in each round beside them, so
    it meets the caches as they do."""
    src = torch.ones(moved // 8, device=dev)
    dst = torch.empty_like(src)

    def copy() -> float:
        sync()
        start = time.perf_counter()
        dst.copy_(src)
        sync()
        return time.perf_counter() - start
    return copy


TRAIN_METHODS = ("sigmoid", "mpd_agl", "ds_atgo", "adali", "a2sg", "st_asg", "psg_pda", "dspike",
                 "localzo", "trsg")


def bench_train(methods: tuple[str, ...] = TRAIN_METHODS, batch: int = 32, T: int = 4,
                steps: int = 10, warmup: int = 2, device: str = "cpu",
                backend: str = "auto", seed: int = 0) -> dict:
    """Median time of one training step (forward, loss, backward, SGD) of the SEW ResNet-19 of
    the ``cifar10`` task on CIFAR-shaped random data, per method; ratios to the first method.
    Searches between epochs (A2SG) are not part of a step."""
    from ..config import resolve_task
    from ..models import build_model
    from ..registry import load_method

    dev = torch.device(device)
    cfg = resolve_task("cifar10")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, 32, 32, generator=generator).to(dev)
    y = torch.randint(0, 10, (batch,), generator=generator).to(dev)
    rows = []
    for name in methods:
        torch.manual_seed(seed)
        model = build_model(cfg["model"], {**cfg["neuron"], "backend": backend}, (3, 32, 32), 10)
        method = load_method(name)()
        method.attach(model, T)
        model.to(dev).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        times = []
        for step in range(warmup + steps):
            sync()
            start = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(x.unsqueeze(0).expand(T, *x.shape)), y)
            aux = method.aux_loss(model)
            (loss if aux is None else loss + aux).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            functional.reset_net(model)
            sync()
            if step >= warmup:
                times.append(time.perf_counter() - start)
        rows.append({"method": name, "median_s": statistics.median(times), "min_s": min(times),
                     "backend": used_backend(model)})
    for row in rows:
        row["time_vs_first"] = row["median_s"] / rows[0]["median_s"]
    return {"model": "resnet19 (sew)", "batch": batch, "T": T, "steps": steps,
            "device": str(dev), "results": rows}
