"""Finite differences of the first layer's weights without recomputing what a weight cannot reach.

A weight w[o, ...] of the first layer changes only that layer's output channel o, by the weight's
change times its input term. Where every module between it and the next weight layer (children
of one ``nn.Sequential``, multi-step) acts on each channel alone (batch norm, pooling, a spiking
neuron whose thresholds are known before the forward), only channel o changes up to the next
layer, and the next layer, linear, changes by its response to that channel's change. A perturbed
forward then runs copies of those modules on channel o alone, adds the next layer's response to
the spikes that moved to its unperturbed output, and runs the rest of the network as usual. The
loss is the whole forward's up to rounding (the tests compare both in float64); on fashion_mnist a
perturbed forward takes 13.5-13.9 ms instead of 30-36 (docs/benchmarks.md).
"""
from __future__ import annotations

import copy
import functools
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from spikingjelly.activation_based import functional
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..models import static
from ..neuron.node import SpikingNeuron

Tensor = torch.Tensor


def _multi_step(module: nn.Module) -> bool:
    return getattr(module, "step_mode", None) == "m"


def _channelwise(module: nn.Module) -> bool:
    """Whether ``module`` (multi-step, [T, B, C, ...]) computes each channel from that channel
    alone: batch norm (statistics per channel), pooling, and spiking neurons whose thresholds
    and shape parameters do not depend on H (a ``sequence`` rule; no per-channel state)."""
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d, _BatchNorm)):
        return _multi_step(module)
    return isinstance(module, SpikingNeuron) and _multi_step(module) \
        and module.rule.mode == "sequence"


def _plain(layer: nn.Module) -> bool:
    """A multi-step linear layer or 2-d convolution (one group, zero padding given as numbers)."""
    if isinstance(layer, nn.Conv2d):
        return _multi_step(layer) and layer.groups == 1 and layer.padding_mode == "zeros" \
            and not isinstance(layer.padding, str)
    return isinstance(layer, nn.Linear) and _multi_step(layer)


def _one_channel(module: nn.Module, channel: int) -> nn.Module:
    """A copy of a channelwise ``module`` for input ``channel`` alone: a batch norm's
    parameters and statistics restricted to it; the others have no per-channel state. Child
    modules (a neuron's rule) are shared, not copied: their buffers are the model's, restored
    after every forward, and a method's rule may hold what cannot be copied."""
    out = copy.deepcopy(module, {id(child): child for child in module.children()})
    if isinstance(module, _BatchNorm):
        for name in ("weight", "bias", "running_mean", "running_var"):
            value = getattr(module, name)
            if value is not None:
                kept = value.detach()[channel:channel + 1].clone()
                setattr(out, name, nn.Parameter(kept) if isinstance(value, nn.Parameter)
                        else kept)
    return out


def _one_input(layer: nn.Module, channel: int) -> nn.Module:
    """A copy of weight layer ``layer`` that reads only input ``channel``, without bias: its
    response to a change of that channel (it is linear)."""
    out = copy.deepcopy(layer)
    out.weight = nn.Parameter(layer.weight.detach().narrow(1, channel, 1).clone())
    out.bias = None
    return out


def _frames(t: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """A multi-step tensor [T, B, ...] as frames [n, ...] (one copy of a static input), and
    the function that turns frames back into steps."""
    T, B = t.shape[:2]
    if static.is_static(t):
        return static._one_copy(t), lambda y: static._repeat(y, T)
    return t.flatten(0, 1), lambda y: y.unflatten(0, (T, B))


def _padded(layer: nn.Module, x: Tensor) -> Tensor:
    """The first layer's input frames as its weights see them: zero-padded for a convolution."""
    if isinstance(layer, nn.Linear):
        return x
    (py, px) = layer.padding
    return nn.functional.pad(x, (px, px, py, py)).contiguous()


def _input_term(layer: nn.Module, padded: Tensor, index: tuple, out_shape: torch.Size
                ) -> Tensor:
    """What ``layer.weight[index]`` multiplies: its input channel index[1] at the positions
    that reach each output of shape ``out_shape`` (frames, one channel), from ``_padded``."""
    if isinstance(layer, nn.Linear):
        return padded[..., index[1]:index[1] + 1]
    (sy, sx), (dy, dx) = layer.stride, layer.dilation
    top, left = index[2] * dy, index[3] * dx
    return padded[:, index[1]:index[1] + 1, top:top + sy * (out_shape[-2] - 1) + 1:sy,
                  left:left + sx * (out_shape[-1] - 1) + 1:sx]


@dataclass
class LocalSegment:
    """``block[first]`` (the first weight layer), the channelwise modules after it and
    ``block[next]`` (the next weight layer), children of one ``nn.Sequential``."""

    block: nn.Sequential
    first: int
    next: int

    @classmethod
    def find(cls, model: nn.Module, layer: nn.Module) -> "LocalSegment | None":
        block = next((b for b in model.modules() if isinstance(b, nn.Sequential)
                      and any(c is layer for c in b)), None)
        if block is None or not _plain(layer):
            return None
        children = list(block)
        first = next(i for i, c in enumerate(children) if c is layer)
        later = next((i for i in range(first + 1, len(children))
                      if isinstance(children[i], (nn.Conv2d, nn.Linear))), None)
        if later is None or not _plain(children[later]) \
                or not all(_channelwise(c) for c in children[first + 1:later]) \
                or any("forward" in vars(c) for c in children[:later + 1]):
            return None  # (a forward set on the instance: ``replaced`` would lose it)
        return cls(block, first, later)

    @property
    def layer(self) -> nn.Module:
        return self.block[self.first]

    def channel_path(self, channel: int) -> nn.Sequential:
        """The modules after the first layer, computing its output ``channel`` only."""
        return nn.Sequential(*(_one_channel(self.block[i], channel)
                               for i in range(self.first + 1, self.next)))

    @contextmanager
    def replaced(self, output: Tensor) -> Iterator[None]:
        """Inside, the block runs nothing up to the next layer, which returns ``output``."""
        skipped = [self.block[i] for i in range(self.next)]
        for m in skipped:
            m.forward = _identity
        self.block[self.next].forward = lambda *args: output
        try:
            yield
        finally:
            for m in skipped + [self.block[self.next]]:
                del m.forward


def _identity(x, *args):
    return x


@dataclass
class BasePass:
    """What the unperturbed forward gave: the first layer's input and output, the next layer's
    input and output, and the loss."""

    x: Tensor
    out_first: Tensor
    into_next: Tensor
    out_next: Tensor
    loss: float


def base_pass(model: nn.Module, probe, seg: LocalSegment) -> BasePass | None:
    """One forward of the probe batch that records what the perturbed ones reuse; None where
    the shortcut does not hold (a layer called more than once, an auxiliary loss, which may
    read any layer's potentials)."""
    seen: dict[str, list] = {"first": [], "next": []}
    hooks = [seg.layer.register_forward_hook(lambda m, a, out: seen["first"].append((a[0], out))),
             seg.block[seg.next].register_forward_hook(
                 lambda m, a, out: seen["next"].append((a[0], out)))]
    try:
        loss = probe.loss_fn(model(probe.x), probe.y)
        aux = probe.aux_loss(model)
    finally:
        for h in hooks:
            h.remove()
    if aux is not None or len(seen["first"]) != 1 or len(seen["next"]) != 1:
        return None
    return BasePass(*seen["first"][0], *seen["next"][0], float(loss))


class ChannelPart:
    """The first layer's output ``channel`` up to the next layer, and the next layer's response
    to it: the loss with one weight of that channel changed."""

    def __init__(self, seg: LocalSegment, base: BasePass, channel: int):
        self.seg, self.base, self.channel = seg, base, channel
        self.path = seg.channel_path(channel)
        self.response = _one_input(seg.block[seg.next], channel)
        self.x = _padded(seg.layer, _frames(base.x)[0])
        out, self.steps = _frames(base.out_first)
        self.out = out.narrow(1, channel, 1).contiguous()
        self.into_next = base.into_next.narrow(2, channel, 1).contiguous()

    @torch.no_grad()
    def loss(self, model: nn.Module, probe, index: tuple, value: Tensor) -> float:
        """The probe loss with the first layer's weight ``index`` set to ``value``."""
        change = value - self.seg.layer.weight[index]
        first = self.out + change * _input_term(self.seg.layer, self.x, index, self.out.shape)
        moved = self.path(self.steps(first)) - self.into_next
        functional.reset_net(self.path)
        if not moved.any():  # no spike moved: the rest sees the unperturbed input
            return self.base.loss
        with self.seg.replaced(self.response(moved).add_(self.base.out_next)):
            return float(probe.loss(model))


def local_losses(model: nn.Module, probe, layer: nn.Module,
                 restored: Callable[[Any], Any]) -> Callable[[tuple, Tensor], float] | None:
    """``loss_at(index, value)``, the probe loss with ``layer.weight[index] = value`` by the
    shortcut, or None where it does not hold. ``restored(x)`` resets the model's state and
    buffers after a forward and returns x."""
    seg = LocalSegment.find(model, layer)
    base = restored(base_pass(model, probe, seg)) if seg is not None else None
    if base is None:
        return None
    part = functools.lru_cache(maxsize=1)(  # the last weight's channel (coordinates are sorted)
        lambda channel: ChannelPart(seg, base, channel))

    def loss_at(index: tuple, value: Tensor) -> float:
        return restored(part(index[0]).loss(model, probe, index, value))

    return loss_at
