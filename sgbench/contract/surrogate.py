"""Contract checks of a method's rules and surrogate: theta and p per layer; g >= 0, finite,
within and filling its declared support, inputs untouched, F' = g; the same at every declared
bound of every parameter."""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from ..neuron.node import neurons
from ..params import problems
from .model import DRAWS, GRID, T, Bound, each_surrogate, rule_outputs, small_model

Tensor = torch.Tensor


def check_rules(cls) -> str:
    return check_rules_of(small_model(cls))


def check_rules_of(model: nn.Module) -> str:
    for index, (theta, p) in enumerate(rule_outputs(model)):
        node = neurons(model)[index]
        P = len(node.rule.shape.params)
        assert theta.shape == (T,), f"layer {index}: theta has shape {tuple(theta.shape)}"
        assert p.shape == (T, P), f"layer {index}: p has shape {tuple(p.shape)}, expected {(T, P)}"
        assert torch.isfinite(theta).all() and torch.isfinite(p).all(), \
            f"layer {index}: non-finite theta or p"
    return f"{len(neurons(model))} layers"


def check_surrogate(cls, model: nn.Module | None = None) -> str:
    for shape, p in each_surrogate(cls, model):
        x, p_before = GRID.clone(), tuple(q.clone() for q in p)
        g = shape.grad(x, *p)
        assert torch.equal(x, GRID) and all(torch.equal(a, b) for a, b in zip(p, p_before)), \
            f"{shape.name}: grad modified its input in place"
        assert torch.isfinite(g).all(), f"{shape.name}: non-finite surrogate"
        assert (g >= 0).all(), f"{shape.name}: negative surrogate {float(g.min()):.3g} at " \
                               f"x = {float(GRID[g.argmin()]):.3g}"
        lo, hi = (float(b) for b in shape.support(*p))
        outside = (GRID < lo - 1e-9) | (GRID > hi + 1e-9)
        assert not (g[outside] > 0).any(), \
            f"{shape.name}: g > 0 outside its declared support [{lo:.3g}, {hi:.3g}], e.g. at " \
            f"x = {float(GRID[outside & (g > 0)][0]):.3g}"
        assert (g[~outside] > 0).any(), f"{shape.name}: g is 0 all over its support"
        check_support_width(shape, p, lo, hi)
        check_primitive(shape, p)
    return "g >= 0, finite, within its support (and filling it), inputs untouched, F' = g"


SUPPORT_FILL = 0.05  # g must be positive within 5 % of the support's width from each finite end


def check_support_width(shape, p: tuple[Tensor, ...], lo: float, hi: float) -> None:
    """A support declared wider than where g is positive makes coverage figures wrong: g must
    be positive near each finite end of the declared support."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return
    x = torch.linspace(lo, hi, 4001, dtype=torch.float64)
    live = x[shape.grad(x.clone(), *p) > 0]
    margin = SUPPORT_FILL * (hi - lo)
    assert float(live.min()) <= lo + margin and float(live.max()) >= hi - margin, \
        f"{shape.name}: declared support [{lo:.3g}, {hi:.3g}] but g > 0 only on " \
        f"[{float(live.min()):.3g}, {float(live.max()):.3g}]"


def check_primitive(shape, p: tuple[Tensor, ...]) -> None:
    """F' = g; for a random shape, F' = the mean of g over DRAWS seeds."""
    lo, hi = (float(b) for b in shape.support(*p))
    x = torch.linspace(max(lo, -6.0), min(hi, 6.0), 997, dtype=torch.float64)
    edges = torch.tensor([lo, 0.0, hi], dtype=torch.float64)
    smooth = (x[:, None] - edges[None]).abs().min(1).values > 1e-4  # away from kinks
    x = x[smooth].requires_grad_(True)
    (dF,) = torch.autograd.grad(shape.primitive(x, *p).sum(), x)
    x = x.detach()
    if shape.seed_param is None:
        g, tolerance = shape.grad(x.clone(), *p), 1e-8 + 1e-6 * dF.abs()
    else:  # the mean of the draws, within 5 of its largest standard error (and 1 % of F's
        # peak slope) at every x
        seed = shape.params.index(shape.seed_param)
        draws = torch.stack([shape.grad(x.clone(), *p[:seed], torch.tensor(float(i)),
                                        *p[seed + 1:]) for i in range(DRAWS)])
        g = draws.mean(0)
        # (one scale for all x: where hits are rare a column's own std underestimates it)
        tolerance = 1e-10 + 0.01 * dF.abs().max() + 5 * draws.std(0).max() / DRAWS ** 0.5
    assert ((dF - g).abs() <= tolerance).all(), \
        f"{shape.name}: the primitive's derivative differs from " \
        f"{'grad' if shape.seed_param is None else 'the mean of grad'} by up to " \
        f"{float((dF - g).abs().max()):.3g}"


def check_bounds(method: Bound) -> str:
    """The surrogate at each declared bound of every parameter (one parameter at a time)."""
    from ..params import declared_bounds

    tried = 0
    for name, value in declared_bounds(method.cls):
        params = dataclasses.replace(method.params, **{name: value})
        if problems(method.cls, params):
            continue  # not allowed with the other parameters (param_problems)
        try:
            check_surrogate(Bound(method.cls, params))
        except Exception as exc:
            raise type(exc)(f"at {name}={value}: {exc}") from None
        tried += 1
    return f"{tried} bound value(s)" if tried else "no declared bounds"
