"""2x2, stride-2 max-pooling on CPU in one pass (a Numba kernel, sgbench/neuron/cpu_kernels.py).

PyTorch's CPU kernel with indices costs several elementwise passes' worth for this, the most
common pooling of spiking CNNs, and keeps an int64 index per output. Here forward reads each
window once and keeps the maximum's offset in the window as one byte; backward writes every input
gradient once. Output, ties (the first maximum in row-major order) and NaN handling are PyTorch's,
so results are equal to ``max_pool2d``'s. On other devices, without Numba, or for other pooling
settings, PyTorch's kernel runs.
"""
from __future__ import annotations

import numpy as np
import torch
from spikingjelly.activation_based import layer

from ..neuron.numba_backend import kernels, numba_available, split
from .static import optimised

Tensor = torch.Tensor


def _images(x: Tensor) -> Tensor:
    """x [..., C, H, W] as [P, C, H, W] (a view for contiguous and channels-last tensors)."""
    return x.reshape(-1, *x.shape[-3:]) if x.dim() > 3 else x[None]


def channels_last(x: Tensor) -> bool:
    images = _images(x)
    return not images.is_contiguous() and images.is_contiguous(
        memory_format=torch.channels_last)


class MaxPool2x2(torch.autograd.Function):
    """x [..., C, H, W] (float32 on CPU, contiguous or channels-last) -> [..., C, H//2, W//2]
    in the same layout."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        images, last = _images(x.detach()), channels_last(x)
        P, C, H, W = images.shape
        if last:  # [P, H, W, C] in memory
            src, kernel = images.permute(0, 2, 3, 1).numpy(), kernels().max_pool_2x2_channels_last
            out_shape = (P, H // 2, W // 2, C)
        else:  # planes [P * C, H, W]
            src, kernel = images.reshape(P * C, H, W).numpy(), kernels().max_pool_2x2
            out_shape = (P * C, H // 2, W // 2)
        out = np.empty(out_shape, np.float32)
        where = np.empty(out_shape, np.uint8)
        split(len(src), lambda lo, hi, _: kernel(lo, hi, src, out, where),
              per_item=src[0].size)
        ctx.where, ctx.last, ctx.in_shape = where, last, images.shape
        return _as_images(torch.from_numpy(out), last, (P, C, H // 2, W // 2)).view(
            *x.shape[:-2], H // 2, W // 2)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        where, last, (P, C, H, W) = ctx.where, ctx.last, ctx.in_shape
        images = _images(grad.to(torch.float32))
        if last:
            grad_out = images.permute(0, 2, 3, 1).contiguous().numpy()
            kernel, in_shape = kernels().max_pool_2x2_channels_last_backward, (P, H, W, C)
        else:
            grad_out = images.reshape(where.shape).contiguous().numpy()
            kernel, in_shape = kernels().max_pool_2x2_backward, (P * C, H, W)
        grad_in = np.empty(in_shape, np.float32)
        split(len(where), lambda lo, hi, _: kernel(lo, hi, grad_out, where, grad_in),
              per_item=grad_in[0].size)
        return _as_images(torch.from_numpy(grad_in), last, (P, C, H, W)).view(grad.shape[:-2]
                                                                             + (H, W))


def _as_images(t: Tensor, last: bool, shape: tuple[int, int, int, int]) -> Tensor:
    """A kernel's output array (as a tensor) as images [P, C, H, W] in their layout."""
    return t.permute(0, 3, 1, 2) if last else t.view(shape)


class MaxPool2d(layer.MaxPool2d):
    """SpikingJelly's multi-step MaxPool2d; kernel 2 and stride 2 on a float32 CPU tensor,
    contiguous or channels-last, run ``MaxPool2x2``, anything else PyTorch's kernel."""

    def _fast(self, x: Tensor) -> bool:
        return (optimised() and not x.is_cuda and x.dtype == torch.float32 and x.dim() >= 3
                and (x.is_contiguous() or channels_last(x))
                and x.shape[-1] >= 2 and x.shape[-2] >= 2
                and self.kernel_size in (2, (2, 2)) and self.stride in (2, (2, 2))
                and self.padding in (0, (0, 0)) and self.dilation in (1, (1, 1))
                and not self.ceil_mode and not self.return_indices and numba_available())

    def forward(self, x: Tensor) -> Tensor:
        if not self._fast(x):
            return super().forward(x)
        return MaxPool2x2.apply(x)
