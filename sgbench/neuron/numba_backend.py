"""The ``numba`` backend: the engine's CPU fast path, fused kernels compiled by Numba.

On CPU, in ``auto`` mode, a layer whose rule works on whole sequences runs charge, fire and reset
over all T in one pass (cpu_kernels.py) instead of the torch backend's handful of elementwise ops
per timestep, and its BPTT in one pass back: same inputs, outputs and gradients as
``engine.SequenceFn``, equal up to float rounding (LocalZO's random surrogate: the same with
the kernels' own draws). It runs the built-in shapes (chosen by the shape object's identity, as
on CUDA). The torch backend stays the reference: ``neuron.backend=torch`` selects it, and it runs
a plugin's own shape (evaluating its torch function over all T and reading the result back
measured slower than the torch backend), diagnostic passes that capture dL/dH, stepwise rules
whose thresholds take gradients and float64 input.

A layer is split over ``torch.get_num_threads()`` Python threads (the kernels release the GIL),
so ``--threads`` governs both backends alike.
"""
from __future__ import annotations

import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from .shapes import SHAPES, Shape

Tensor = torch.Tensor
MIN_PER_THREAD = 1 << 15  # below this many neurons (or planes x pixels) a layer runs on one thread
RECOMPUTE_MAX_T = 16  # up to this T, backward may recompute H (a block's H stays in cache)


@functools.lru_cache(maxsize=None)
def numba_available() -> bool:
    """Whether Numba imports here (an installed Numba that does not fit this NumPy counts as
    missing: the torch backend runs instead)."""
    try:
        from . import cpu_kernels  # noqa: F401
    except Exception:
        return False
    return True


def kernels():
    from . import cpu_kernels

    return cpu_kernels


@functools.lru_cache(maxsize=8)
def _pool(threads: int, pid: int) -> ThreadPoolExecutor:
    """Worker threads of this process (a forked child makes its own)."""
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sgbench-cpu")


def split(n: int, work, per_item: int = 1) -> None:
    """Run ``work(lo, hi, part)`` over [0, n) in parts, at most one per torch thread.
    ``per_item``: the elements one item stands for (a pooled plane: its pixels)."""
    parts = max(1, min(torch.get_num_threads(), n * per_item // MIN_PER_THREAD, n))
    if parts == 1:
        work(0, n, 0)
        return
    bounds = [n * j // parts for j in range(parts + 1)]
    jobs = [_pool(parts, os.getpid()).submit(work, bounds[j], bounds[j + 1], j)
            for j in range(parts)]
    for job in jobs:
        job.result()


def kernel_kind(shape: Shape) -> int | None:
    """The kernel code of ``shape``: built-in shapes only (a plugin's own shape, even one
    reusing a built-in name, has none)."""
    return kernels().KINDS.get(shape.name) if SHAPES.get(shape.name) is shape else None


def params_in_kernel(shape: Shape) -> bool:
    """Whether the backward kernel makes the gradients of ``shape``'s parameters itself (else
    ``Shape.param_grads`` makes them from the kept H and the total dL/dS)."""
    return kernel_kind(shape) in kernels().PARAM_KINDS


def storage_order(t: Tensor) -> list[int]:
    """The dims of ``t`` from the outermost in memory: ``t.permute(order)`` is contiguous
    (channels-last [B, C, H, W]: [0, 2, 3, 1]); the dims in order where ``t`` is contiguous or
    not dense (a reader then copies it)."""
    order = list(range(t.dim()))
    if t.is_contiguous():
        return order
    by_stride = sorted(order, key=lambda d: (-t.stride(d), d))
    return by_stride if t.permute(by_stride).is_contiguous() else order


class Layout:
    """The storage order of a layer's per-step tensor (contiguous, channels-last, ...): every
    tensor of the layer is handed to the kernels as rows [R, N] in that order, so one index
    addresses the same neuron in all of them and a channels-last input is read in place."""

    def __init__(self, shape: tuple[int, ...], order: list[int]):
        self.shape, self.order = tuple(shape), list(order)
        self.inverse = [self.order.index(d) for d in range(len(shape))]
        self.n = math.prod(shape)

    @classmethod
    def of(cls, step: Tensor) -> "Layout":
        """The order ``step`` is stored in (``storage_order``)."""
        return cls(step.shape, storage_order(step))

    def rows(self, t: Tensor | None) -> np.ndarray | None:
        """t [R, *shape] (or [*shape], as one row) as a float32 array [R, N] (None stays None);
        a view where t is already in this order."""
        if t is None:
            return None
        one = t.dim() == len(self.shape)
        t = t.detach().to(torch.float32)
        t = t[None] if one else t
        flat = t.permute(0, *(d + 1 for d in self.order)).reshape(len(t), self.n)
        return flat.contiguous().numpy()[0] if one else flat.contiguous().numpy()

    def pool_rows(self) -> tuple[int, int]:
        """How a 2x2 max-pool in the kernels' pass reads planes [..., H, W] (H and W even)
        stored in this order: (row length, values a pixel), (W, 1) contiguous, (W C, C)
        channels-last ([..., C, H, W] stored as [..., H, W, C]); (0, 0): it cannot."""
        dims = len(self.shape)
        if dims < 2 or any(side % 2 or not side for side in self.shape[-2:]):
            return 0, 0
        width = self.shape[-1]
        if self.order == list(range(dims)):
            return width, 1
        if dims >= 3 and self.order == [*range(dims - 3), dims - 2, dims - 1, dims - 3]:
            return width * self.shape[-3], self.shape[-3]
        return 0, 0

    def pooled(self) -> "Layout":
        """The layout of the 2x2-pooled planes: H and W halved, the same order."""
        return Layout((*self.shape[:-2], self.shape[-2] // 2, self.shape[-1] // 2), self.order)

    def tensor(self, a: np.ndarray) -> Tensor:
        """The inverse of ``rows``: an array [R, N] (or [N]) as a tensor [R, *shape] ([*shape])."""
        t = torch.from_numpy(a)
        stored = [self.shape[d] for d in self.order]
        if a.ndim == 1:
            return t.view(stored).permute(self.inverse)
        return t.view(len(a), *stored).permute(0, *(d + 1 for d in self.inverse))


class NumbaSequenceFn(torch.autograd.Function):
    """Charge, fire and reset over all T on CPU: ``engine.SequenceFn``'s inputs, outputs and
    gradients; ``v0`` may be a number (a fresh sequence). With ``one_frame`` the input is a
    single frame [...] given at every step (a direct-input network's first layer): it is read
    once per step and its gradient, the sum over the steps, is made in the same pass.

    Unless ``keep_h`` (or the parameters of a shape outside ``PARAM_KINDS`` want gradients, or
    T > RECOMPUTE_MAX_T), H is not kept: the third output is None and backward recomputes H from
    the input, which it keeps instead (no [T, N] tensor written forward and read back; one frame
    for a one-frame input). The rectangle's parameter gradients are summed in the kernel.

    With ``pool``, where the spikes are [..., H, W] with H and W even and stored in that order, a
    fourth output is their 2x2, stride-2 max-pool (models/pool.py's, exact) made in the same
    pass. Its gradient goes to the spikes' inside the backward pass, so a network that reads
    only the pooled spikes never writes or reads dL/dS at full size."""

    @staticmethod
    def forward(ctx, x_seq, v0, k, theta, p, shape: Shape, dyn, one_frame=False, pool=False,
                keep_h=True):
        T, layout = theta.shape[0], Layout.of(x_seq if one_frame else x_seq[0])
        x = layout.rows(x_seq[None] if one_frame else x_seq)
        p_in_torch = ctx.needs_input_grad[4] and not params_in_kernel(shape)
        keep_h = keep_h or p_in_torch or T > RECOMPUTE_MAX_T
        h = np.empty((T, layout.n), np.float32) if keep_h else None
        s, v = np.empty((T, layout.n), np.float32), np.empty(layout.n, np.float32)
        v0_t = v0.detach().to(torch.float32) if torch.is_tensor(v0) else None
        v0_scalar = np.float32(0.0 if v0_t is not None else v0)
        k_value = float(k.detach()) if torch.is_tensor(k) else float(k)
        lerp = not torch.is_tensor(k) and k + dyn.c == 1.0  # as engine.charge
        theta_f, p_f = theta.detach().float().contiguous(), p.detach().float().contiguous()
        width, depth = layout.pool_rows() if pool else (0, 0)
        pooled = np.empty((T, layout.n // 4), np.float32) if width else None
        where = np.empty((T, layout.n // 4), np.uint8) if width else None
        f32 = np.float32
        args = (x, layout.rows(v0_t), v0_scalar, theta_f.numpy(), f32(k_value), f32(dyn.c),
                f32(dyn.b), f32(dyn.v_reset), s, h, v, pooled, where, width, depth)
        forward = kernels().forward_kernel(lerp, dyn.hard_reset)
        unit = 2 * width or 1  # a thread's share: whole pairs of rows when pooling
        split(layout.n // unit, lambda lo, hi, _: forward(lo * unit, hi * unit, *args),
              per_item=unit)
        h_t = layout.tensor(h) if keep_h else None
        ctx.save_for_backward(h_t if keep_h else x_seq, v0_t, theta_f, p_f)
        ctx.shape, ctx.dyn, ctx.k, ctx.v0_scalar = shape, dyn, k_value, v0_scalar
        ctx.k_is_tensor, ctx.layout, ctx.one_frame = torch.is_tensor(k), layout, one_frame
        ctx.where, ctx.h_kept, ctx.lerp = where, keep_h, lerp
        ctx.set_materialize_grads(False)
        outputs = layout.tensor(s), layout.tensor(v), h_t
        return outputs if pooled is None else (*outputs, layout.pooled().tensor(pooled))

    @staticmethod
    def backward(ctx, grad_s, grad_v, grad_h, grad_pooled=None):
        kept, v0_t, theta, p = ctx.saved_tensors
        shape, dyn, layout = ctx.shape, ctx.dyn, ctx.layout
        T, N = theta.shape[0], layout.n
        # H as the forward made it (a view: it was made in this order), or its input to remake it
        h = layout.rows(kept) if ctx.h_kept else None
        x = None if ctx.h_kept else layout.rows(kept[None] if ctx.one_frame else kept)
        need_x, need_v0, need_k, need_theta, need_p = ctx.needs_input_grad[:5]
        need_k = need_k and ctx.k_is_tensor
        need_v0 = need_v0 and v0_t is not None
        grad_x = np.empty((1 if ctx.one_frame else T, N), np.float32) if need_x else None
        grad_v0 = np.empty(N, np.float32) if need_v0 else None
        p_in_kernel = need_p and params_in_kernel(shape)
        gs_total = np.empty((T, N), np.float32) if need_p and not p_in_kernel else None
        sums = np.zeros((torch.get_num_threads(), T + 1, 1 + p.shape[1]), np.float64)
        pooled = grad_pooled is not None
        width, depth = layout.pool_rows() if pooled else (0, 0)  # pooled: the forward's
        f32 = np.float32
        args = (h, x, layout.rows(v0_t), ctx.v0_scalar, theta.numpy(), p.numpy(),
                layout.rows(grad_s), layout.rows(grad_v), layout.rows(grad_h), f32(ctx.k),
                f32(dyn.c), f32(dyn.b), f32(dyn.v_reset), grad_x, grad_v0, gs_total)
        pool_args = (layout.pooled().rows(grad_pooled) if pooled else None,
                     ctx.where if pooled else None, width, depth)
        backward = kernels().backward_kernel(kernel_kind(shape), dyn.hard_reset, dyn.detach_reset,
                                             need_theta, need_k, ctx.one_frame, ctx.lerp,
                                             p_in_kernel)
        unit = 2 * width or 1
        split(N // unit, lambda lo, hi, part: backward(lo * unit, hi * unit, *args, sums[part],
                                                       *pool_args), per_item=unit)
        total = torch.from_numpy(sums.sum(0).astype(np.float32))
        g_p = None
        if p_in_kernel:
            g_p = total[:T, 1:]
        elif need_p:  # H was kept (forward)
            gs = layout.tensor(gs_total)
            g_p = torch.stack([torch.stack(shape.param_grads(kept[t] - theta[t], tuple(p[t]),
                                                             gs[t])) for t in range(T)])
        if need_x:
            grad_x = layout.tensor(grad_x[0] if ctx.one_frame else grad_x)
        return (grad_x if need_x else None, layout.tensor(grad_v0) if need_v0 else None,
                total[T, 0] if need_k else None, total[:T, 0] if need_theta else None, g_p, None, None,
                None, None, None)
