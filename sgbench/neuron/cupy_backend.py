"""The ``cupy`` backend: fused CUDA kernels for charge, fire and reset over all T, and their BPTT.

One CUDA source is generated per (surrogate, input dtype, reset mode, detach_reset) and compiled
once by CuPy (NVRTC), then cached. Everything that may change between calls is a kernel argument:
the decay k (a device pointer, so a learnable k needs no host sync), the input gain c, the drive
b, v_reset, the thresholds theta[T] and the shape parameters p[T, P]. Each thread owns one neuron
and walks the T steps; the forward saves H only (fp32), as the torch backend does. A fresh
sequence's initial potential is a scalar argument, not a tensor.

The surrogate is either a built-in shape's CUDA source (chosen by the shape object's identity,
never by a name a plugin could reuse) or, for any other shape, ``precomputed``: g(H - theta[t];
p[t]) is evaluated by the shape's own torch function once over the saved [T, ...] tensor and the
backward kernel reads it (one extra elementwise pass, no Python loop over T).

The backward returns dL/dX and dL/dV0 where they are needed, and the per-timestep threshold and
the decay gradients (warp sums, one atomic per warp). Shape-parameter gradients need dF/dp of
each shape: the rectangle's (the learnable widths and thresholds of PSG+PDA and TrSG) are summed
in the kernel (``PARAM_SOURCE``); for other shapes the kernel writes the total dL/dS and
``Shape.param_grads`` reduces it in torch, only when p is learnable.

Stepwise rules use the same kernels with T=1, k=0, c=1, b=0 on H itself: fire and reset alone.
"""
from __future__ import annotations

import functools

import torch

from .cupy_source import PARAM_SOURCE, PRECOMPUTED, has_kernel, kernel_source, variant_tag
from .shapes import SHAPES, Shape

Tensor = torch.Tensor
BLOCK = 256

@functools.lru_cache(maxsize=None)
def cupy_available() -> bool:
    try:
        import cupy  # noqa: F401
    except Exception:  # an installed CuPy without a usable CUDA runtime counts as missing
        return False
    return torch.cuda.is_available()


@functools.lru_cache(maxsize=None)
def _kernels(shape: str, dtype: torch.dtype, hard: bool, detach: bool):
    import cupy

    module = cupy.RawModule(code=kernel_source(shape, dtype, hard, detach),
                            options=("--std=c++14",))
    tag = variant_tag(shape, dtype, hard, detach)
    return module.get_function(f"forward_{tag}"), module.get_function(f"backward_{tag}")


class Long(int):
    """An int passed to a kernel as ``long long`` (element counts)."""


def _c_arg(a):
    """One kernel argument in its C type: a tensor as its device pointer (the kernels read and
    write its memory in place, whatever its dtype), None as a null pointer, float as float,
    ``Long`` as long long, any other int as int."""
    import numpy as np

    if a is None:
        return np.uint64(0)
    if torch.is_tensor(a):
        return np.uint64(a.data_ptr())
    if isinstance(a, Long):
        return np.int64(a)
    return np.float32(a) if isinstance(a, float) else np.int32(a)


class _TorchStream:
    """A torch stream handle in the CUDA stream protocol, for ``cupy.cuda.Stream.from_external``."""

    def __init__(self, handle: int):
        self.handle = handle

    def __cuda_stream__(self):
        return 0, self.handle


@functools.lru_cache(maxsize=64)
def _cupy_stream(handle: int, device_index: int):
    """CuPy's view of the torch stream ``handle`` (made once per stream)."""
    import cupy

    from_external = getattr(cupy.cuda.Stream, "from_external", None)
    if from_external is not None:  # CuPy >= 14
        return from_external(_TorchStream(handle))
    return cupy.cuda.ExternalStream(handle, device_index)


def _launch(kernel, n: int, args: tuple, device: torch.device) -> None:
    """Run ``kernel`` over n threads on torch's current stream."""
    import cupy

    index = device.index if device.index is not None else torch.cuda.current_device()
    grid = ((n + BLOCK - 1) // BLOCK,)
    with cupy.cuda.Device(index), \
            _cupy_stream(torch.cuda.current_stream(device).cuda_stream, index):
        kernel(grid, (BLOCK,), tuple(_c_arg(a) for a in args))


def _like(t: Tensor | None, ref: Tensor, dtype: torch.dtype) -> Tensor:
    """``t`` with ``ref``'s strides (so that one linear index addresses the same element in every
    tensor) and ``dtype``: ``t`` itself when it already is so (the kernels only read it), else a
    copy; a zero tensor when ``t`` is None."""
    if t is not None and t.dtype == dtype and t.shape == ref.shape and t.stride() == ref.stride():
        return t
    out = torch.empty_like(ref, dtype=dtype)
    return out.zero_() if t is None else out.copy_(t)


def dense_layout(x: Tensor) -> Tensor:
    """[T, ...] with each timestep one dense block of N elements (contiguous or channels-last)."""
    flat = x.flatten(0, 1) if x.dim() == 5 else None
    if x.is_contiguous() or (flat is not None and flat.is_contiguous(
            memory_format=torch.channels_last) and x.stride(0) == x[0].numel()):
        return x
    return x.contiguous()


def kernel_key(shape: Shape) -> str:
    """The kernel variant of ``shape``: its own CUDA source, or the precomputed surrogate."""
    return shape.name if has_kernel(shape) else PRECOMPUTED


def precomputed_surrogate(shape: Shape, h: Tensor, theta: Tensor, p: Tensor) -> Tensor:
    """g(H - theta[t]; p[t]) for every t, by the shape's torch function, in fp32 with ``h``'s
    layout: one call with the parameters broadcast over T (a random shape is called per step,
    since each step has a seed of its own)."""
    T = h.shape[0]
    view = (T,) + (1,) * (h.dim() - 1)
    x = h - theta.view(view)
    if shape.seed_param is not None:
        g = torch.stack([shape.grad(x[t], *p[t].unbind(0)) for t in range(T)])
    else:
        g = shape.grad(x, *(q.view(view) for q in p.unbind(1)))
    from .engine import _check_plugin_grad

    if SHAPES.get(shape.name) is not shape:
        _check_plugin_grad(shape, g, x)
    return _like(g, h, torch.float32)


class CupySequenceFn(torch.autograd.Function):
    """The fused counterpart of ``engine.SequenceFn``: same inputs, outputs and gradients; ``v0``
    may be a number (a fresh sequence). (Diagnostic passes that capture dL/dH run on the torch
    backend.)"""

    @staticmethod
    def forward(ctx, x_seq, v0, k, theta, p, shape: Shape, dyn):
        x = dense_layout(x_seq)
        T, N, dev = x.shape[0], x[0].numel(), x.device
        key = kernel_key(shape)
        forward_kernel, _ = _kernels(key, x.dtype, dyn.hard_reset, dyn.detach_reset)
        k_t = (k if torch.is_tensor(k) else torch.tensor(k)).reshape(1).float().to(dev)
        v0_t = _like(v0, x[0], torch.float32) if torch.is_tensor(v0) else None
        v0_scalar = 0.0 if v0_t is not None else float(v0)
        h = torch.empty_like(x, dtype=torch.float32)
        s = torch.empty_like(x)
        v = torch.empty_like(x[0], dtype=torch.float32)
        theta_f, p_f = theta.float().contiguous(), p.float().contiguous()
        _launch(forward_kernel, N, (x, v0_t, v0_scalar, theta_f, k_t, float(dyn.c),
                                    float(dyn.b), float(dyn.v_reset), s, h, v, T, Long(N)), dev)
        ctx.save_for_backward(h, v0_t, k_t, theta_f, p_f)
        ctx.shape, ctx.dyn, ctx.x_dtype, ctx.key = shape, dyn, x.dtype, key
        ctx.k_is_tensor, ctx.v0_scalar = torch.is_tensor(k), v0_scalar
        ctx.set_materialize_grads(False)
        return s, v, h

    @staticmethod
    def backward(ctx, grad_s, grad_v, grad_h):
        h, v0, k, theta, p = ctx.saved_tensors
        shape, dyn = ctx.shape, ctx.dyn
        T, N, dev = h.shape[0], h[0].numel(), h.device
        need_x, need_v0, need_k, need_theta, need_p = ctx.needs_input_grad[:5]
        need_k = need_k and ctx.k_is_tensor
        need_v0 = need_v0 and v0 is not None
        _, backward_kernel = _kernels(ctx.key, ctx.x_dtype, dyn.hard_reset, dyn.detach_reset)
        g_pre = precomputed_surrogate(shape, h, theta, p) if ctx.key == PRECOMPUTED else None
        gs = _like(grad_s, h, ctx.x_dtype)
        gv = _like(grad_v, h[0], torch.float32) if grad_v is not None else h[0, :1].new_zeros(1)
        gh = _like(grad_h, h, torch.float32) if grad_h is not None else h.new_zeros(1)
        grad_x = torch.empty_like(h, dtype=ctx.x_dtype) if need_x else None
        grad_v0 = torch.empty_like(h[0]) if need_v0 else None
        p_in_kernel = need_p and ctx.key in PARAM_SOURCE
        gs_total = torch.empty_like(h) if need_p and not p_in_kernel else h.new_zeros(1)
        acc_theta, acc_k, acc_p = h.new_zeros(T), h.new_zeros(1), h.new_zeros(T, p.shape[1])
        flags = (int(need_p and not p_in_kernel), acc_theta, acc_k, acc_p, int(need_theta),
                 int(need_k), int(p_in_kernel), T, Long(N))
        _launch(backward_kernel, N, (
            h, v0, ctx.v0_scalar, theta, p, p.shape[1], g_pre, gs, gv, int(grad_v is not None),
            gh, int(grad_h is not None), k, float(dyn.c), float(dyn.v_reset), grad_x, grad_v0,
            gs_total) + flags, dev)
        g_p = acc_p if p_in_kernel else None
        if need_p and not p_in_kernel:
            g_p = torch.stack([torch.stack(shape.param_grads(h[t] - theta[t], tuple(p[t]),
                                                             gs_total[t])) for t in range(T)])
        return (grad_x, grad_v0, acc_k[0] if need_k else None,
                acc_theta if need_theta else None, g_p, None, None)
