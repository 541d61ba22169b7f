"""`sgbench bench epoch`: training steps of a task as sgbench runs them, side by side with the same
network built on SpikingJelly's neurons and on a plain PyTorch LIF loop.

All three train the task's architecture (the same conv, BN and linear layers, the same initial
weights, optimizer and loss) on the same batches, drawn by sgbench's data path; only the
spiking neuron differs: sgbench's engine with the method's rule, SpikingJelly's LIF/IF node with
the same surrogate (its built-in class where one has the same formula, else a custom one, which
SpikingJelly runs on its reference path), or a Python loop over T with an autograd surrogate.
A recurrent layer (``rsnn``) becomes, for SpikingJelly, its input layer and a
``LinearRecurrentContainer`` around the node (as SpikingJelly's FeedBackNet), the same function.
sgbench stores images and feature maps as the task says (``train.channels_last``, as `sgbench
run` does); the baselines as their users would write them, contiguous.
Steps are interleaved (sgbench, SpikingJelly, plain, sgbench, ...) so drift in the machine
affects each alike; medians are reported. The data wait is the time to draw a batch.
"""
from __future__ import annotations

import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from spikingjelly.activation_based import base, functional, neuron, surrogate
from torch import nn

from ..data import build_data, encode, loading, step_shape
from ..data.location import DataContext
from ..method import FixedSurrogate, Method
from ..models import build_model, static
from ..neuron.node import used_backend
from ..neuron.shapes import Shape, get_shape
from ..train.recipe import Precision

Tensor = torch.Tensor


class ShapeSpike(torch.autograd.Function):
    """Heaviside forward; backward through the sgbench shape g(x; p), x = H - theta."""

    @staticmethod
    def forward(ctx, x: Tensor, shape: Shape, p: tuple[float, ...]) -> Tensor:
        ctx.save_for_backward(x)
        ctx.shape, ctx.p = shape, p
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        return grad * ctx.shape.grad(x, *ctx.p), None, None


@dataclass(frozen=True)
class Surrogate:
    shape: Shape
    p: tuple[float, ...]

    def __call__(self, x: Tensor) -> Tensor:
        return ShapeSpike.apply(x, self.shape, self.p)

    def spikingjelly(self) -> surrogate.SurrogateFunctionBase:
        """SpikingJelly's own class for the same formula, else a custom surrogate class."""
        if self.shape.name == "atan":
            return surrogate.ATan(alpha=self.p[0])
        if self.shape.name == "sigmoid":
            return surrogate.Sigmoid(alpha=self.p[0])
        return _CustomSurrogate(self)


class _CustomSurrogate(surrogate.SurrogateFunctionBase):
    def __init__(self, sg: Surrogate):
        super().__init__(spiking=True)
        self.sg = sg

    def forward(self, x: Tensor) -> Tensor:
        return self.sg(x)


class PlainLIF(base.MemoryModule):
    """H = k V + c X + b, S = step(H - theta), hard or soft reset: a loop over T, autograd through
    every operation (the straightforward PyTorch implementation); one step at a time too (the
    recurrent layers), its potential kept until ``functional.reset_net``."""

    def __init__(self, k: float, c: float, b: float, theta: float, hard: bool, v_reset: float,
                 detach_reset: bool, spike: Callable[[Tensor], Tensor]):
        super().__init__()
        self.k, self.c, self.b, self.theta = k, c, b, theta
        self.hard, self.v_reset, self.detach_reset, self.spike = hard, v_reset, detach_reset, spike
        self.register_memory("v", 0.0)

    def forward(self, x_seq: Tensor) -> Tensor:
        return torch.stack([self.single_step_forward(x) for x in x_seq])

    def single_step_forward(self, x: Tensor) -> Tensor:
        h = self.k * self.v + self.c * x + self.b
        s = self.spike(h - self.theta)
        r = s.detach() if self.detach_reset else s
        self.v = h * (1 - r) + self.v_reset * r if self.hard else h - self.theta * r
        return s


def plain_factory(section: dict[str, Any], sg: Surrogate) -> Callable[..., nn.Module]:
    """The task's neuron as a plain loop (a learnable decay is held at its initial value); a zoo
    model's positions pass their own constants."""
    from ..neuron.node import SpikingNeuron

    def make(**position) -> nn.Module:
        s = {**section, **position}
        ref = SpikingNeuron(**s)
        dyn, k = ref.dynamics, ref.decay_value()
        c, b = dyn.c, dyn.b
        if s["charge"] == "tau" and s["learnable_decay"]:  # PLIF: gain and drive 1/tau
            c = 1 - k if s["decay_input"] else 1.0
            b = (1 - k) * dyn.v_reset if dyn.hard_reset else 0.0
        return PlainLIF(k, c, b, ref.v_threshold, dyn.hard_reset, dyn.v_reset,
                        dyn.detach_reset, sg)
    return make


def spikingjelly_factory(section: dict[str, Any], sg: Surrogate) -> Callable[..., nn.Module]:
    """The task's neuron as SpikingJelly's node: IF, LIF (tau charge), or LIF with
    tau = 1 / (1 - k) and no input decay for H = k V + X (parametric when k is learnable); a zoo
    model's positions pass their own constants."""
    def make(**position) -> nn.Module:
        s = {**section, **position}
        common = dict(v_threshold=s["v_threshold"], detach_reset=s["detach_reset"],
                      v_reset=s["v_reset"] if s["reset"] == "hard" else None,
                      surrogate_function=sg.spikingjelly(), step_mode="m")
        if s["charge"] == "if":
            return neuron.IFNode(**common)
        learnable = s["learnable_decay"]
        node = neuron.ParametricLIFNode if learnable else neuron.LIFNode
        if s["charge"] == "tau":
            tau, decay_input = s["tau"], s["decay_input"]
        else:
            tau, decay_input = 1 / (1 - s["decay"]), False
        return node(**{"init_tau" if learnable else "tau": tau}, decay_input=decay_input,
                    **common)
    return make


def baseline_surrogate(method: Method) -> tuple[Surrogate, str]:
    """The method's fixed surrogate, or ATan (alpha 2) for methods that adapt theirs."""
    if isinstance(method, FixedSurrogate):
        return Surrogate(method.surrogate(), tuple(method.shape_params())), method.name
    return Surrogate(get_shape("atan"), (2.0,)), "atan (alpha=2): the method adapts its own"


@dataclass
class Candidate:
    name: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    method: Method | None = None
    times: list[float] | None = None
    precision: Precision = field(default_factory=Precision)  # its layout (amp not applied)


def _candidate(name: str, cfg: dict[str, Any], data, device: torch.device, seed: int,
               method: Method | None, factory: Callable[[], nn.Module] | None,
               make_optimizer: Callable) -> Candidate:
    torch.manual_seed(seed)  # the same initial weights for every candidate
    model = build_model(cfg["model"], cfg["neuron"],
                        step_shape(data.input_shape, cfg["data"]["encoding"]), data.num_classes,
                        neuron_factory=factory)
    if method is not None:
        method.attach(model, cfg["T"])
    elif name == "spikingjelly":
        spikingjelly_recurrence(model)
    # sgbench's candidate stores its tensors as `sgbench run` does; the baselines contiguous
    precision = Precision.for_device(cfg["train"], device) if method is not None else Precision()
    precision.place(model, device).train()
    return Candidate(name, model, make_optimizer(model, cfg["train"], method or Method()),
                     method, [], precision)


def spikingjelly_recurrence(model: nn.Module) -> None:
    """Each recurrent layer as SpikingJelly writes one (its ``rsnn_sequential_fmnist``
    FeedBackNet): the input layer, then a ``LinearRecurrentContainer`` around the node, whose
    linear layer mixes [W x[t] + b; s[t-1]] at every step. Its weights are [identity, R] and no
    bias, so the function is the layer's own."""
    from spikingjelly.activation_based import layer

    from ..models.recurrent import RecurrentLayer
    from ..models.zoo import replace_module

    for name, module in list(model.named_modules()):
        if not isinstance(module, RecurrentLayer) or module.rec is None:
            continue
        width = module.rec.in_features
        module.neuron.step_mode = "s"
        container = layer.LinearRecurrentContainer(module.neuron, in_features=width,
                                                   out_features=width, step_mode="m")
        with torch.no_grad():
            container.rc.weight.copy_(torch.cat([torch.eye(width), module.rec.weight], dim=1))
            container.rc.bias.zero_()
        fc = layer.Linear(module.fc.in_features, width, step_mode="m")
        fc.load_state_dict(module.fc.state_dict())
        replace_module(model, name, nn.Sequential(fc, container))


def _step(c: Candidate, x: Tensor, y: Tensor, cfg: dict[str, Any], loss_fn, sync) -> float:
    sync()
    start = time.perf_counter()
    with nullcontext() if c.method is not None else static.stock_layers():
        out = c.model(encode(c.precision.input(x), cfg["T"], cfg["data"]["encoding"]))
    loss = loss_fn(out, y)
    aux = c.method.aux_loss(c.model) if c.method is not None else None
    c.optimizer.zero_grad(set_to_none=True)
    (loss if aux is None else loss + aux).backward()
    c.optimizer.step()
    functional.reset_net(c.model)
    sync()
    return time.perf_counter() - start


def forever(loader):
    """Batches of pass after pass."""
    while True:
        yield from loader


def _training(cfg: dict[str, Any], device: torch.device, data_dir, seed: int):
    """The task's data, its loss, a device sync and an endless stream of training batches."""
    from ..train import make_loss

    data = build_data(cfg["data"], DataContext.resolve(data_dir, False, cfg["T"]))
    train = loading.on_device(data.train, device)
    batches = forever(loading.train_batches(train, cfg["train"]["batch_size"],
                                             torch.Generator().manual_seed(seed), 0,
                                             drop_last=True))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    return data, make_loss(cfg["train"]), sync, batches


def bench_epoch(task: str, method_name: str = "atan", steps: int = 20, warmup: int = 3,
                device: str = "cpu", seed: int = 0, data_dir=None, overrides=()
                ) -> dict[str, Any]:
    """Median seconds per training step of each candidate, samples/s, and their ratios."""
    from ..config import resolve_task
    from ..registry import load_method
    from ..train import make_optimizer

    dev = torch.device(device)
    cfg = resolve_task(task, overrides=list(overrides))
    data, loss_fn, sync, batches = _training(cfg, dev, data_dir, seed)
    batch = cfg["train"]["batch_size"]
    method = load_method(method_name)()
    sg, sg_label = baseline_surrogate(method)
    candidates = [
        _candidate("sgbench", cfg, data, dev, seed, method, None, make_optimizer),
        _candidate("spikingjelly", cfg, data, dev, seed, None,
                   spikingjelly_factory(cfg["neuron"], sg), make_optimizer),
        _candidate("plain pytorch", cfg, data, dev, seed, None,
                   plain_factory(cfg["neuron"], sg), make_optimizer)]
    data_times = []
    for step in range(warmup + steps):
        sync()
        start = time.perf_counter()
        x, y = next(batches)
        sync()
        if step >= warmup:
            data_times.append(time.perf_counter() - start)
        for c in candidates:
            elapsed = _step(c, x, y, cfg, loss_fn, sync)
            if step >= warmup:
                c.times.append(elapsed)
    return _summary(cfg, method, sg_label, candidates, data_times, batch, len(data.train), dev,
                    steps)


def _interleaved(candidates: list[Candidate], batches, cfg: dict[str, Any], loss_fn, sync,
                 steps: int, warmup: int) -> None:
    """``warmup`` then ``steps`` steps, each candidate in turn on the same batch; the timed
    steps' times go to each candidate's ``times``."""
    for step in range(warmup + steps):
        x, y = next(batches)
        for c in candidates:
            elapsed = _step(c, x, y, cfg, loss_fn, sync)
            if step >= warmup:
                c.times.append(elapsed)


def bench_methods(task: str, methods: list[str], steps: int = 10, warmup: int = 2,
                  device: str = "cpu", data_dir=None, overrides=()) -> dict[str, Any]:
    """Every method's training step on the task, interleaved in one process (each step, each
    method in turn, on the same batch) so drift hits them alike: medians and the ratio to the
    first method's."""
    from ..config import resolve_task
    from ..registry import load_method
    from ..train import make_optimizer

    dev = torch.device(device)
    cfg = resolve_task(task, overrides=list(overrides))
    data, loss_fn, sync, batches = _training(cfg, dev, data_dir, 0)
    candidates = [_candidate(name, cfg, data, dev, 0, load_method(name)(), None, make_optimizer)
                  for name in methods]
    _interleaved(candidates, batches, cfg, loss_fn, sync, steps, warmup)
    first = statistics.median(candidates[0].times)
    return {"task": cfg["name"], "version": cfg["version"], "T": cfg["T"],
            "batch": cfg["train"]["batch_size"], "steps": steps, "device": str(dev),
            "threads": torch.get_num_threads(),
            "results": [{"method": c.name, "backend": used_backend(c.model),
                         "median_s": statistics.median(c.times),
                         "vs_first": statistics.median(c.times) / first} for c in candidates]}


def step_seconds(method: str, task: str, T: int | None = None, params=(),
                 protocol: str = "controlled", epochs: int | None = None, overrides=(),
                 device: str = "cpu", steps: int = 5, warmup: int = 2, data_dir=None
                 ) -> dict[str, Any]:
    """One configuration as a run trains it (its recipe under ``protocol``, the method at
    ``params``): the median seconds of a training step, the batches of an epoch's training
    and testing (in training batches) over its epochs, and the seconds of the method's
    between-epoch work (``adapt`` on the probe batch, once, after the timed steps)."""
    from ..config import resolve_task
    from ..params import parse_params
    from ..registry import load_method
    from ..train import make_optimizer

    method_cls = load_method(method)
    cfg = resolve_task(task, T=T, epochs=epochs, overrides=list(overrides), protocol=protocol,
                       paper_overlay=method_cls.paper_overlay)
    dev = torch.device(device)
    data, loss_fn, sync, batches = _training(cfg, dev, data_dir, 0)
    rule = method_cls(parse_params(method_cls, list(params)))
    candidate = _candidate("sgbench", cfg, data, dev, 0, rule, None, make_optimizer)
    _interleaved([candidate], batches, cfg, loss_fn, sync, steps, warmup)
    batch = cfg["train"]["batch_size"]
    return {"step_s": statistics.median(candidate.times),
            "train_batches": -(-len(data.train) // batch),
            "test_batches": -(-len(data.test) // batch), "epochs": cfg["train"]["epochs"],
            "adapt_s": _adapt_seconds(rule, candidate.model, cfg, data, loss_fn, dev, sync)}


def _adapt_seconds(method: Method, model: nn.Module, cfg: dict[str, Any], data, loss_fn,
                   device: torch.device, sync) -> float:
    """One call of the method's between-epoch work on the probe batch a run would use."""
    from ..measure.probe import Probe

    probe = Probe.for_run(cfg, data.train, loss_fn, method.aux_loss, device)
    sync()
    start = time.perf_counter()
    method.adapt(model, 0, probe)
    sync()
    return time.perf_counter() - start


def _summary(cfg, method, sg_label, candidates, data_times, batch, n_train, dev, steps):
    medians = {c.name: statistics.median(c.times) for c in candidates}
    ours, data_s = medians["sgbench"], statistics.median(data_times)
    return {
        "task": cfg["name"], "version": cfg["version"], "T": cfg["T"], "batch": batch,
        "method": method.name, "baseline_surrogate": sg_label, "device": str(dev),
        "steps": steps, "threads": torch.get_num_threads(),
        "sgbench_backend": used_backend(candidates[0].model),
        "sgbench_channels_last": candidates[0].precision.channels_last,
        "data_s_per_batch": data_s, "data_share": data_s / (data_s + ours),
        "epoch_s_estimate": (ours + data_s) * n_train / batch,
        "results": [{"candidate": c.name, "median_s": medians[c.name], "min_s": min(c.times),
                     "samples_per_s": batch / medians[c.name],
                     "time_vs_sgbench": medians[c.name] / ours} for c in candidates],
        "ratios": {"sgbench/spikingjelly": ours / medians["spikingjelly"],
                   "sgbench/plain": ours / medians["plain pytorch"]},
    }
