"""A recurrent spiking layer's whole sequence as one autograd node (CPU).

The layer: I[t] = D[t] + S[t-1] R^T (D = W x + b for every step, computed before), then the
neuron's charge H[t] = k V[t-1] + c I[t] + b and fire-and-reset. Stepping it through autograd
costs a graph node per operation and step and one weight-gradient product per step. Here the
forward runs without a graph and the backward is BPTT by hand, step by step from T-1 down:

    dL/dS[t] = g_out[t] + dL/dI[t+1] R            (the spikes feed the next step)
    dL/dH[t] = the engine's step backward (surrogate, reset) of dL/dS[t] and dL/dV[t]
    dL/dI[t] = c dL/dH[t],   dL/dV[t-1] = k dL/dH[t]
    dL/dR    = sum_t dL/dI[t]^T S[t-1]            (one product over all steps)

It is the same arithmetic as the step loop (tests/test_recurrent.py checks it in float64), for
layers whose rule fixes theta[t] and p[t] before the sequence and takes no gradient itself; any
other layer (stepwise rules, learnable decay or thresholds, scaled spikes, a loss on H) runs the
step loop. A diagnostic pass gets dL/dH of every step, and a search (A2SG) can remake them for
other shape parameters: the same loop at other p, the spikes and upstream gradients as they were.
"""
from __future__ import annotations

import functools

import torch

from .engine import Dynamics, charge, fire_reset, step_backward
from .shapes import Shape

Tensor = torch.Tensor


def recurrent_sequence(neuron, drive: Tensor, weight: Tensor) -> Tensor | None:
    """The layer's spikes [T, B, H] through the fused sequence, or None where it cannot run."""
    if not _eligible(neuron, drive):
        return None
    T = drive.shape[0]
    theta, p = (a.to(device=drive.device, dtype=drive.dtype)
                for a in neuron.rule.thresholds(neuron, T))
    if theta.requires_grad or p.requires_grad:
        return None
    s, v, h = RecurrentSequenceFn.apply(drive, weight, neuron._initial_v(drive[0]),
                                        neuron.decay_factor(), theta, p, neuron.rule.shape,
                                        neuron.dynamics, neuron.capture)
    neuron.t, neuron.used_backend = T, "torch-recurrent"
    return neuron._finish(drive, s, v, h, theta, p)


def _eligible(neuron, drive: Tensor) -> bool:
    from .node import SpikingNeuron

    if not isinstance(neuron, SpikingNeuron):  # another library's neuron in the layer
        return False
    rule = neuron.rule
    return (neuron.backend == "auto" and not drive.is_cuda and neuron.t == 0
            and drive.dtype in (torch.float32, torch.float64) and neuron.w is None
            and rule.mode == "sequence" and not rule.scaled_output
            and not (neuron.keep_h and neuron.training))


class RecurrentSequenceFn(torch.autograd.Function):
    """(D [T, B, H], R [H, H], V[0], k, theta [T], p [T, P]) -> (S, V[T-1], H) of the layer;
    a ``capture`` (diagnostic passes) gets dL/dH of every step, and with ``keep`` how to remake
    them for other p (A2SG's search)."""

    @staticmethod
    def forward(ctx, drive, weight, v0, k: float, theta, p, shape: Shape, dyn: Dynamics,
                capture=None):
        hs, spikes = torch.empty_like(drive), torch.empty_like(drive)
        v = v0
        for t in range(drive.shape[0]):
            i = drive[t] if t == 0 else torch.addmm(drive[t], spikes[t - 1], weight.t())
            h = charge(i, v, k, dyn, out=hs[t])
            _, v = fire_reset(h, theta[t], dyn, out=spikes[t])
        ctx.save_for_backward(weight, theta, p, hs, spikes)
        ctx.k, ctx.shape, ctx.dyn, ctx.capture = k, shape, dyn, capture
        ctx.mark_non_differentiable(hs)
        return spikes, v, hs

    @staticmethod
    def backward(ctx, grad_spikes, grad_v, _grad_h):
        weight, theta, p, hs, spikes = ctx.saved_tensors
        bptt = functools.partial(recurrent_bptt, weight, theta, hs, grad_spikes, grad_v, ctx.k,
                                 ctx.shape, ctx.dyn)
        grad_h, grad_v0 = bptt(p)
        if ctx.capture is not None:
            for t in range(grad_h.shape[0]):
                ctx.capture.add(t, grad_h[t])
            ctx.capture.flush()
            ctx.capture.keep_recompute(lambda other_p: bptt(other_p)[0])
        grad_drive = grad_h if ctx.dyn.c == 1.0 else grad_h * ctx.dyn.c
        grad_weight = None
        if ctx.needs_input_grad[1]:
            width = hs.shape[-1]
            grad_weight = grad_drive[1:].reshape(-1, width).t() @ spikes[:-1].reshape(-1, width)
        grad_v0 = grad_v0 if ctx.needs_input_grad[2] else None
        return grad_drive, grad_weight, grad_v0, None, None, None, None, None, None


def recurrent_bptt(weight, theta, hs, grad_spikes, grad_v, k: float, shape: Shape,
                   dyn: Dynamics, p) -> tuple[Tensor, Tensor | None]:
    """dL/dH [T, ...] of the layer at shape parameters p, and dL/dV[0], from T-1 down."""
    grad_h = torch.empty_like(hs)
    for t in range(hs.shape[0] - 1, -1, -1):
        gs = grad_spikes[t] if t == hs.shape[0] - 1 else torch.addmm(
            grad_spikes[t], grad_h[t + 1], weight, alpha=dyn.c)
        gh = step_backward(hs[t], theta[t], p[t], gs, grad_v, shape, dyn, False, False).h
        grad_h[t] = gh
        grad_v = gh * k if k != 0.0 else None
    return grad_h, grad_v
