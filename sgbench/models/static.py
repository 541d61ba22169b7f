"""Layers that compute a static input once.

Direct encoding feeds the same image at every timestep (``encode(x, T, 'direct')`` is a view
with stride 0 along T), so every layer before the first spiking neuron computes the same result
T times. These layers detect such input and compute it once, returning a stride-0 view again:
the convolution of one copy, and batch normalisation of one copy with the running variance
updated as for T copies (torch's update uses the unbiased variance of the n values it saw,
n/(n-1); T copies call for N/(N-1) with N = T n). Outputs and gradients are those of the T-fold
computation; autograd sums the T gradient copies through the view. Operation counting turns the
reuse off (``stock_layers``), so counted MACs keep their per-timestep convention.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from spikingjelly.activation_based import layer
from torch import nn

Tensor = torch.Tensor
_reuse = [True]


@contextmanager
def stock_layers() -> Iterator[None]:
    """Run sgbench's layers as SpikingJelly's own: static input computed at every timestep and
    PyTorch's max-pool kernel (operation counting; the baselines of `sgbench bench epoch`)."""
    _reuse.append(False)
    try:
        yield
    finally:
        _reuse.pop()


def optimised() -> bool:
    """Whether sgbench's own layer optimisations are on (outside ``stock_layers``)."""
    return _reuse[-1]


def is_static(x: Tensor) -> bool:
    """Multi-step input [T, ...] whose T entries are one tensor (stride 0 along T)."""
    return _reuse[-1] and x.dim() > 1 and x.shape[0] > 1 and x.stride(0) == 0


def _repeat(y: Tensor, T: int) -> Tensor:
    """``y`` as T timesteps (a view); the next static layer reads ``y`` itself, not ``x[0]``,
    whose backward would fill a T-fold zero tensor."""
    out = y.unsqueeze(0).expand(T, *y.shape)
    out.static_source = y
    return out


def _one_copy(x: Tensor) -> Tensor:
    source = getattr(x, "static_source", None)
    return source if source is not None else x[0]


class Conv2d(layer.Conv2d):
    """SpikingJelly's multi-step Conv2d that convolves a static input once."""

    def forward(self, x: Tensor) -> Tensor:
        if self.step_mode == "m" and is_static(x):
            return _repeat(nn.Conv2d.forward(self, _one_copy(x)), x.shape[0])
        return super().forward(x)


class StaticBatchNorm:
    """Mixin for SpikingJelly's multi-step batch norms: a static input is normalised once."""

    def forward(self, x: Tensor) -> Tensor:
        values = x[0].numel() // x.shape[2] if x.dim() > 2 else 0  # per channel in one copy
        if self.step_mode == "m" and is_static(x) and values > 1:
            return _repeat(self._once(_one_copy(x), x.shape[0], values), x.shape[0])
        return super().forward(x)

    def _once(self, x0: Tensor, T: int, n: int) -> Tensor:
        if not (self.training and self.track_running_stats):
            return self.super_forward(x0)
        # batch statistics only; the running statistics are updated below, as for T copies
        y, mean, invstd = torch.native_batch_norm(x0, self.weight, self.bias, None, None, True,
                                                  0.0, self.eps)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            m = self.momentum if self.momentum is not None \
                else 1.0 / float(self.num_batches_tracked)
            var = invstd.pow(-2).sub_(self.eps)  # the biased batch variance
            N = T * n
            self.running_mean.lerp_(mean, m)
            self.running_var.lerp_(var.mul_(N / (N - 1)), m)
        return self.rescale(y)

    def rescale(self, y: Tensor) -> Tensor:
        """What a subclass does after normalising (threshold scaling); nothing here."""
        return y


class BatchNorm2d(StaticBatchNorm, layer.BatchNorm2d):
    """SpikingJelly's multi-step BatchNorm2d that normalises a static input once."""


class MaxPool2d(layer.MaxPool2d):
    """SpikingJelly's multi-step MaxPool2d that pools a static input once."""

    def forward(self, x: Tensor) -> Tensor:
        if self.step_mode == "m" and is_static(x):
            return _repeat(nn.MaxPool2d.forward(self, _one_copy(x)), x.shape[0])
        return super().forward(x)


STATIC_OF = {layer.Conv2d: Conv2d, layer.BatchNorm2d: BatchNorm2d, layer.MaxPool2d: MaxPool2d}


def as_static(module: nn.Module) -> nn.Module | None:
    """The static version of a SpikingJelly multi-step conv, norm or max-pool, or of a
    ``SeqToANNContainer`` of their single-step counterparts (the same parameters and buffers
    under the same names), else None."""
    if type(module) in STATIC_OF:
        module.__class__ = STATIC_OF[type(module)]  # a subclass that only adds a fast path
        return module
    if not isinstance(module, layer.SeqToANNContainer):
        return None
    plain = {nn.Conv2d: layer.Conv2d, nn.BatchNorm2d: layer.BatchNorm2d,
             nn.MaxPool2d: layer.MaxPool2d}
    if any(type(m) not in plain for m in module.children()):
        return None
    out = nn.Sequential()
    for name, m in module.named_children():
        m.__class__ = STATIC_OF[plain[type(m)]]  # the same attributes; multi-step from here
        m.step_mode = "m"
        out.add_module(name, m)
    return out
