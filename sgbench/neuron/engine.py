"""The reference (torch) backend of the neuron engine: charge, fire, reset with an analytic BPTT.

Dynamics per layer and timestep t (DESIGN section 3):

    H[t] = k * V[t-1] + c * X[t] + b                       charge
    S[t] = (H[t] >= theta[t])                              fire, exact
    V[t] = H[t] * (1 - S[t]) + v_reset * S[t]              hard reset
    V[t] = H[t] - theta[t] * S[t]                          soft reset

Backward replaces dS/dH by the shape's g(H - theta[t]; p[t]). The sequence function saves only H
(S is recomputed from it), runs the BPTT recursion by hand, and returns gradients for the input,
the initial potential, the decay k, the thresholds and the shape parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import UserError
from .shapes import SHAPES, Shape

Tensor = torch.Tensor


@dataclass(frozen=True)
class Dynamics:
    """Constants of one neuron layer besides the decay k (which may be a learnable tensor)."""

    c: float = 1.0  # input gain
    b: float = 0.0  # constant drive (hard reset to v_reset != 0 under tau charge)
    hard_reset: bool = True
    v_reset: float = 0.0
    detach_reset: bool = False


def charge(x: Tensor, v: Tensor, k: float | Tensor, dyn: Dynamics, out: Tensor | None = None
           ) -> Tensor:
    """H = k * V + c * X + b, with k a constant or a (learnable) scalar tensor."""
    if isinstance(k, float) and k + dyn.c == 1.0:  # decay_input LIF: H = V + c (X - V)
        h = torch.lerp(v, x, dyn.c, out=out)
        return h.add_(dyn.b) if dyn.b else h
    cx = x if dyn.c == 1.0 else x * dyn.c
    if isinstance(k, float):
        h = torch.add(cx, v, alpha=k, out=out)
    else:
        h = torch.addcmul(cx, v, k, out=out)
    return h.add_(dyn.b) if dyn.b else h


def fire_reset(h: Tensor, theta: Tensor, dyn: Dynamics, out: Tensor | None = None
               ) -> tuple[Tensor, Tensor]:
    """Exact forward of fire and reset for one step; returns (spike as float, new potential).

    Masks are made as floats by the comparison itself: boolean masks are several times slower
    on CPU.
    """
    s = torch.ge(h, theta, out=torch.empty_like(h) if out is None else out)
    if not dyn.hard_reset:
        return s, torch.addcmul(h, s, theta, value=-1.0)  # H - theta S
    v = torch.addcmul(h, h, s, value=-1.0)  # H (1 - S)
    return s, (v.add_(s, alpha=dyn.v_reset) if dyn.v_reset else v)


@dataclass
class StepGrads:
    h: Tensor  # dL/dH[t] through this step's spike and reset
    theta: Tensor | None  # dL/dtheta[t], scalar
    p: list[Tensor] | None  # dL/dp[t], one scalar per shape parameter


def step_backward(h, theta, p, grad_s, grad_v, shape: Shape, dyn: Dynamics,
                  need_theta: bool, need_p: bool, out: Tensor | None = None,
                  below: Tensor | None = None) -> StepGrads:
    """Gradients of one fire-and-reset step given dL/dS[t] (grad_s) and dL/dV[t] (grad_v);
    ``p`` is the step's shape-parameter vector [P]; dL/dH[t] is written to ``out`` if given.
    ``below`` is (H < theta) as a float mask, when the caller has it already."""
    p = tuple(p.unbind(0))
    x = h - theta
    gs = grad_s  # total dL/dS: through the reset too, unless it is detached
    if grad_v is not None and not dyn.detach_reset:  # dV/dS = v_reset - H (hard), -theta (soft)
        if not dyn.hard_reset:
            gs = torch.addcmul(grad_s, grad_v, -theta)
        elif dyn.v_reset == 0.0:
            gs = torch.addcmul(grad_s, grad_v, h, value=-1.0)
        else:
            gs = torch.addcmul(grad_s, grad_v, dyn.v_reset - h)
    if grad_v is not None and dyn.hard_reset and below is None:
        below = torch.lt(x, 0.0, out=torch.empty_like(x))
    g_theta = g_p = None
    if need_theta and grad_v is not None and not dyn.hard_reset:
        g_theta = -(grad_v * torch.ge(x, 0.0, out=torch.empty_like(x))).sum()
    if need_p:
        g_p = shape.param_grads(x, p, gs)
    sg = shape.grad(x, *p)  # last: whatever a shape does to x cannot reach the terms above
    if SHAPES.get(shape.name) is not shape:  # a plugin's own: its output is checked
        _check_plugin_grad(shape, sg, x)
    if grad_v is None:
        gh = torch.mul(grad_s, sg, out=out)
    else:
        through_reset = grad_v * below if dyn.hard_reset else grad_v
        gh = torch.addcmul(through_reset, gs, sg, out=out)
    if need_theta:
        g_theta = -(gs * sg).sum() + (g_theta if g_theta is not None else 0)
    return StepGrads(gh, g_theta, g_p)


def _check_plugin_grad(shape, sg, x: Tensor) -> None:
    """A plugin surrogate must give one finite, non-negative value per potential: a scalar, a
    wrong shape or a NaN would otherwise train silently at chance."""
    if not torch.is_tensor(sg) or sg.shape != x.shape:
        raise UserError(f"surrogate '{shape.name}' returned "
                        f"{tuple(sg.shape) if torch.is_tensor(sg) else type(sg).__name__} for "
                        f"potentials of shape {tuple(x.shape)}: it must return one value each")
    if not bool(torch.isfinite(sg).all()):
        raise UserError(f"surrogate '{shape.name}' returned non-finite values (NaN or inf)")


def _previous_potential(h: Tensor, theta: Tensor, dyn: Dynamics
                        ) -> tuple[Tensor, Tensor | None]:
    """V[t-1] from H[t-1] (as ``fire_reset``), and the mask (H < theta) under a hard reset."""
    if not dyn.hard_reset:
        return fire_reset(h, theta, dyn)[1], None
    below = torch.lt(h, theta, out=torch.empty_like(h))
    v = h * below  # H (1 - S)
    return (v.add_(1.0 - below, alpha=dyn.v_reset) if dyn.v_reset else v), below


@dataclass
class SequenceGrads:
    delta: Tensor  # dL/dH[t] for every t, all paths included [T, ...]
    v0: Tensor | None
    k: Tensor | None
    theta: Tensor | None
    p: Tensor | None


def bptt(h_seq, v0, k, theta, p, grad_s, grad_v, grad_h, shape: Shape, dyn: Dynamics,
         need_k=False, need_theta=False, need_p=False, capture=None) -> SequenceGrads:
    """Backpropagation through time of one layer, from its pre-spike potentials H alone.

    ``grad_s`` [T, ...] is dL/dS from the layers above, ``grad_v`` dL/dV[T] (or None) and
    ``grad_h`` a direct dL/dH (or None: auxiliary losses on H). ``capture`` (a GradCapture)
    receives dL/dH[t] as it is produced.
    """
    T = h_seq.shape[0]
    delta = torch.empty_like(h_seq)
    g_theta = torch.zeros_like(theta) if need_theta else None
    g_p = torch.zeros_like(p) if need_p else None
    g_k = torch.zeros((), dtype=h_seq.dtype, device=h_seq.device) if need_k else None
    gv, unit_k = grad_v, isinstance(k, float) and k == 1.0
    below = None  # (H[t] < theta[t]), made for V[t] at step t + 1 and reused at step t
    for t in range(T - 1, -1, -1):
        g = step_backward(h_seq[t], theta[t], p[t], grad_s[t], gv, shape, dyn,
                          need_theta, need_p, out=delta[t], below=below)
        if grad_h is not None:
            delta[t].add_(grad_h[t])
        if capture is not None:
            capture.add(t, delta[t])
        if need_theta:
            g_theta[t] = g.theta
        if need_p:
            g_p[t] = torch.stack(g.p)
        if need_k:  # dL/dk = sum_t <dL/dH[t], V[t-1]>
            v_prev, below = (v0, None) if t == 0 else _previous_potential(
                h_seq[t - 1], theta[t - 1], dyn)
            g_k += torch.vdot(delta[t].reshape(-1), v_prev.reshape(-1))
        gv = delta[t] if unit_k else delta[t] * k  # dL/dV[t-1]
    if capture is not None:
        capture.flush()
    return SequenceGrads(delta, gv.clone() if unit_k else gv, g_k, g_theta, g_p)


class SequenceFn(torch.autograd.Function):
    """Charge, fire and reset over all T steps in one call (``sequence`` mode).

    Returns (S[T, ...], V[T], H[T, ...]); H is differentiable, for losses on the potential.
    """

    @staticmethod
    def forward(ctx, x_seq, v0, k, theta, p, shape: Shape, dyn: Dynamics, capture=None):
        """x_seq [T, ...]; v0 like x_seq[0]; k float or scalar tensor; theta [T]; p [T, P]."""
        h_seq = torch.empty_like(x_seq)
        s_seq = torch.empty_like(x_seq)
        v = v0
        for t in range(x_seq.shape[0]):
            h = charge(x_seq[t], v, k, dyn, out=h_seq[t])
            _, v = fire_reset(h, theta[t], dyn, out=s_seq[t])
        learnable_k = torch.is_tensor(k)
        ctx.save_for_backward(h_seq, v0, k if learnable_k else None, theta, p)
        ctx.shape, ctx.dyn, ctx.k_const, ctx.capture = shape, dyn, (
            None if learnable_k else k), capture
        ctx.set_materialize_grads(False)
        return s_seq, v, h_seq

    @staticmethod
    def backward(ctx, grad_s, grad_v, grad_h):
        h_seq, v0, k, theta, p = ctx.saved_tensors
        k = ctx.k_const if k is None else k
        if grad_s is None:
            grad_s = torch.zeros_like(h_seq)
        if ctx.capture is not None:
            ctx.capture.keep_inputs(h_seq, v0, k, theta, grad_s, grad_v, grad_h, ctx.shape,
                                    ctx.dyn)
        need_v0, need_k, need_theta, need_p = (ctx.needs_input_grad[i] for i in (1, 2, 3, 4))
        g = bptt(h_seq, v0, k, theta, p, grad_s, grad_v, grad_h, ctx.shape, ctx.dyn,
                 need_k, need_theta, need_p, ctx.capture)
        grad_x = g.delta if ctx.dyn.c == 1.0 else g.delta.mul_(ctx.dyn.c)
        return grad_x, (g.v0 if need_v0 else None), g.k, g.theta, g.p, None, None, None


class FireResetFn(torch.autograd.Function):
    """Fire and reset for one step (``stepwise`` mode and single-step use)."""

    @staticmethod
    def forward(ctx, h, theta, p, shape: Shape, dyn: Dynamics, capture=None, t: int = 0):
        s, v = fire_reset(h, theta, dyn)
        ctx.save_for_backward(h, theta, p)
        ctx.shape, ctx.dyn, ctx.capture, ctx.t = shape, dyn, capture, t
        ctx.set_materialize_grads(False)
        return s, v

    @staticmethod
    def backward(ctx, grad_s, grad_v):
        h, theta, p = ctx.saved_tensors
        if grad_s is None:
            grad_s = torch.zeros_like(h)
        need_theta, need_p = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        g = step_backward(h, theta, p, grad_s, grad_v, ctx.shape, ctx.dyn,
                          need_theta, need_p)
        if ctx.capture is not None:
            ctx.capture.add(ctx.t, g.h)
        return g.h, g.theta, (torch.stack(g.p) if need_p else None), None, None, None, None
