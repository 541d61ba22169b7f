"""2x2, stride-2 max-pooling on CPU in one pass (a Numba kernel, sgbench/neuron/cpu_kernels.py).

PyTorch's CPU kernel with indices costs several elementwise passes' worth for this, the most
common pooling of spiking CNNs, and keeps an int64 index per output. Here forward reads each
window once and keeps the maximum's offset in the window as one byte; backward writes every input
gradient once. Output, ties (the first maximum in row-major order) and NaN handling are PyTorch's,
so results are equal to ``max_pool2d``'s. On other devices, without Numba, or for other pooling
settings, PyTorch's kernel runs.

An engine neuron directly followed by such a pool (``pool_in_neurons``) pools its spikes in the
numba kernels' own pass and hands the result on with them (an attribute of the spike tensor), so
the spikes are not read again, and their gradient at full size is never made. Everything else
about the neuron stays: its output is all its spikes (firing rates, hooks), the pool's input is
that output (changed in place since, it is pooled here again).
"""
from __future__ import annotations

import numpy as np
import torch
from spikingjelly.activation_based import layer
from torch import nn

from ..neuron.node import SpikingNeuron
from ..neuron.numba_backend import kernels, numba_available, split
from .static import optimised

Tensor = torch.Tensor


class MaxPool2x2(torch.autograd.Function):
    """x [..., H, W] (contiguous float32 on CPU, H and W even) -> [..., H / 2, W / 2]."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        H, W = x.shape[-2:]
        planes = x.detach().reshape(-1, H, W).numpy()
        out = np.empty((len(planes), H // 2, W // 2), np.float32)
        where = np.empty(out.shape, np.uint8)
        pairs = planes.view(np.uint64)
        split(len(planes), lambda lo, hi, _: kernels().max_pool_2x2(lo, hi, pairs, out, where),
              per_item=H * W)
        ctx.where, ctx.in_shape = where, x.shape
        return torch.from_numpy(out).view(*x.shape[:-2], H // 2, W // 2)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        where, (H, W) = ctx.where, ctx.in_shape[-2:]
        grad_out = grad.to(torch.float32).reshape(where.shape).contiguous().numpy()
        grad_in = np.empty((len(where), H, W), np.float32)
        split(len(where), lambda lo, hi, _: kernels().max_pool_2x2_backward(
            lo, hi, grad_out, where, grad_in), per_item=H * W)
        return torch.from_numpy(grad_in).view(ctx.in_shape)


class MaxPool2d(layer.MaxPool2d):
    """SpikingJelly's multi-step MaxPool2d; kernel 2 and stride 2 on a float32 CPU tensor return
    the pool its neuron made (contiguous or channels-last), else run ``MaxPool2x2`` (contiguous),
    anything else PyTorch's kernel."""

    def two_by_two(self) -> bool:
        """Whether this pool is the 2x2, stride-2 max-pool the kernels make."""
        return (self.kernel_size in (2, (2, 2)) and self.stride in (2, (2, 2))
                and self.padding in (0, (0, 0)) and self.dilation in (1, (1, 1))
                and not self.ceil_mode and not self.return_indices)

    def _fast(self, x: Tensor) -> bool:
        """Whether ``MaxPool2x2`` runs on ``x``."""
        return (optimised() and not x.is_cuda and x.dtype == torch.float32 and x.dim() >= 3
                and x.is_contiguous() and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0
                and self.two_by_two() and numba_available())

    def forward(self, x: Tensor) -> Tensor:
        version, pooled = getattr(x, "max_pool_2x2", (None, None))  # by the neuron that made x
        if version == x._version and optimised() and self.two_by_two():  # x not changed since
            return pooled
        return MaxPool2x2.apply(x) if self._fast(x) else super().forward(x)


def pool_in_neurons(model: nn.Module) -> None:
    """Mark each engine neuron that a 2x2 ``MaxPool2d`` follows in a Sequential to pool its
    spikes in its own pass (the pool then takes the neuron's result)."""
    for block in model.modules():
        if isinstance(block, nn.Sequential):
            for first, second in zip(block, list(block)[1:]):
                if isinstance(first, SpikingNeuron) and isinstance(second, MaxPool2d) \
                        and second.two_by_two():
                    first.max_pool_after = True
