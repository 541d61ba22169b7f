"""2x2 max-pooling whose forward pass is four strided views (CPU).

``max_pool2d`` with kernel 2 and stride 2 takes, per window, the maximum of four values and
remembers the first maximal one in row-major order (PyTorch's kernels keep the first maximum they
meet) for the backward pass. On CPU the generic kernel with indices is several times slower than
three elementwise maxima over the window's strided views, so the forward here computes the same
output and the same indices that way and the backward is PyTorch's own
(``max_pool2d_with_indices_backward``). On other devices PyTorch's kernel runs.
"""
from __future__ import annotations

import torch
from spikingjelly.activation_based import layer

from .static import optimised

Tensor = torch.Tensor


def pool_with_indices(x: Tensor) -> tuple[Tensor, Tensor]:
    """Output and flat indices (into each H x W plane) of 2x2, stride-2 max-pooling of x."""
    H, W = x.shape[-2:]
    h, w = H // 2, W // 2  # floor, as without ceil_mode
    a, b, c, d = (x[..., i:2 * h:2, j:2 * w:2] for i in (0, 1) for j in (0, 1))
    top, bottom = torch.maximum(a, b), torch.maximum(c, d)
    out = torch.maximum(top, bottom)
    # ties stay in the first row, and within a row in the first column
    row, right_top, right_bottom = ((p > q).int() for p, q in ((bottom, top), (b, a), (d, c)))
    base = (torch.arange(h, dtype=torch.int32, device=x.device) * (2 * W))[:, None] \
        + torch.arange(w, dtype=torch.int32, device=x.device) * 2
    # offset in the window: right_top in the first row; W + right_bottom in the second
    index = (right_bottom + W - right_top).mul_(row).add_(right_top).add_(base)
    return out, index.long()


class MaxPool2x2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        out, index = pool_with_indices(x)
        ctx.save_for_backward(x, index)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        x, index = ctx.saved_tensors
        return torch.ops.aten.max_pool2d_with_indices_backward(
            grad.contiguous(), x, [2, 2], [2, 2], [0, 0], [1, 1], False, index)


class MaxPool2d(layer.MaxPool2d):
    """SpikingJelly's multi-step MaxPool2d; kernel 2 and stride 2 on a contiguous CPU tensor run
    ``MaxPool2x2``, anything else PyTorch's kernel."""

    def _fast(self, x: Tensor) -> bool:
        return (optimised() and not x.is_cuda and x.dim() >= 4 and x.is_contiguous()
                and self.kernel_size in (2, (2, 2)) and self.stride in (2, (2, 2))
                and self.padding in (0, (0, 0)) and self.dilation in (1, (1, 1))
                and not self.ceil_mode and not self.return_indices)

    def forward(self, x: Tensor) -> Tensor:
        if not self._fast(x):
            return super().forward(x)
        if self.step_mode == "m" and x.dim() == 5:
            return MaxPool2x2.apply(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        return MaxPool2x2.apply(x)
