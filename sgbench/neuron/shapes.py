"""Built-in surrogate shapes.

A shape is the stand-in derivative ``g(x; p)`` of the Heaviside spike, where ``x = H - theta`` is
the pre-spike potential measured from the threshold in use (so every shape is centred on the real
threshold) and ``p`` is a vector of shape parameters. Each shape also has a primitive ``F(x; p)``
with ``F' = g``: the backward pass treats the spike as ``F`` when it differentiates the shape
parameters, ``dS/dp := dF/dp`` (the usual way learnable surrogates receive gradients).

All functions broadcast: ``x`` is any tensor, each parameter is a scalar tensor or a tensor that
broadcasts against ``x``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

Tensor = torch.Tensor


@dataclass(frozen=True)
class Shape:
    """One surrogate family: its parameter names, derivative, primitive and support."""

    name: str
    params: tuple[str, ...]
    grad: Callable[..., Tensor]  # g(x, *p)
    primitive: Callable[..., Tensor]  # F(x, *p), F' = g
    support: Callable[..., tuple[float | Tensor, float | Tensor]]  # (lo, hi) of x where g > 0
    doc: str = ""
    seed_param: str | None = None  # a random shape: the parameter that seeds its draws; then
    # grad is a sample whose mean over seeds is the primitive's derivative

    def param_grads(self, x: Tensor, p: tuple[Tensor, ...], weight: Tensor) -> list[Tensor]:
        """sum(weight * dF/dp_i) for each parameter, by autograd through the primitive.

        The spike is treated as F(x; p) when differentiating p; x itself is held fixed.
        """
        leaves = [q.detach().requires_grad_(True) for q in p]
        with torch.enable_grad():
            f = self.primitive(x.detach(), *leaves)
            return list(torch.autograd.grad(f, leaves, weight, allow_unused=True,
                                            materialize_grads=True))


def coverage(h: Tensor, theta, lo, hi) -> Tensor:
    """Share of potentials whose distance from the threshold lies in [lo, hi]: the
    gradient-available interval of a surrogate with that support (DS-ATGO, AAAI 2026, Fig. 5)."""
    x = h - theta
    return ((x >= lo) & (x <= hi)).float().mean()


def _mask(op, x: Tensor, bound) -> Tensor:
    """A comparison made directly as a float mask (boolean masks are several times slower)."""
    return op(x, bound, out=torch.empty_like(x))


def _between(x: Tensor, lo, hi) -> Tensor:
    return _mask(torch.ge, x, lo).mul_(_mask(torch.le, x, hi))


def _clip(x: Tensor, lo, hi) -> Tensor:
    """clamp(x, lo, hi) for tensor or number bounds, differentiable in the bounds too."""
    return torch.minimum(torch.maximum(x, torch.as_tensor(lo, dtype=x.dtype)),
                         torch.as_tensor(hi, dtype=x.dtype))


# -- asymmetric rectangle: STBP (Wu et al. 2018, Eq. 9) and AdaLi's lightweight rectangle --------
def _rect_grad(x, left, right, area_left, area_right):
    """area_left/left on [-left, 0), area_right/right on [0, right], 0 elsewhere."""
    height_left, height_right = area_left / left, area_right / right
    step = _mask(torch.ge, x, 0.0).mul_(height_right - height_left).add_(height_left)
    return step.mul_(_between(x, -left, right))


def _rect_primitive(x, left, right, area_left, area_right):
    lo = area_left * (_clip(x, -left, 0.0) + left) / left
    hi = area_right * _clip(x, 0.0, right) / right
    return lo + hi


# -- asymmetric triangle: Esser et al. 2016 (PNAS), max(0, 1 - |x|) -----------------------------
def _tri_grad(x, left, right, height):
    """height * max(0, 1 - |x| / left) for x < 0 and height * max(0, 1 - |x| / right) for x >= 0."""
    inv_width = _mask(torch.ge, x, 0.0).mul_(1 / right - 1 / left).add_(1 / left)
    return inv_width.mul_(x.abs()).neg_().add_(1).clamp_(min=0).mul_(height)


def _tri_primitive(x, left, right, height):
    xl = _clip(x, -left, 0.0)
    xr = _clip(x, 0.0, right)
    return height * ((xl + left) ** 2 / (2 * left) + xr - xr**2 / (2 * right))


# -- clipped ramp: the A2SG family g = max(0, slope*x + bias) on [-left, right] ----------------
def _ramp_grad(x, left, right, slope, bias):
    return (x * slope).add_(bias).clamp_(min=0).mul_(_between(x, -left, right))


def _ramp_primitive(x, left, right, slope, bias):
    """Integral of g from -left to x. Requires slope >= 0 (a rising ramp, as in every A2SG preset)."""
    slope, bias = torch.as_tensor(slope, dtype=x.dtype), torch.as_tensor(bias, dtype=x.dtype)
    inf = torch.full_like(slope, math.inf)
    zero = torch.where(slope > 0, -bias / torch.where(slope > 0, slope, 1.0),
                       torch.where(bias > 0, -inf, inf))  # where the ramp crosses zero
    start = _clip(zero, -left, right)
    upper = torch.maximum(_clip(x, -left, right), start)
    return slope * (upper**2 - start**2) / 2 + bias * (upper - start)


def _ramp_support(left, right, slope, bias):
    return -left, right


# -- sigmoid: SpikingJelly's Sigmoid surrogate, g = alpha*s(alpha x)(1 - s(alpha x)) ------------
def _sigmoid_grad(x, alpha):
    s = (x * alpha).sigmoid_()
    return torch.addcmul(s, s, s, value=-1.0).mul_(alpha)


def _sigmoid_primitive(x, alpha):
    return torch.sigmoid(alpha * x)


# -- atan: Fang et al. 2021 (PLIF), g = alpha / (2 (1 + (pi/2 alpha x)^2)) -----------------------
def _atan_grad(x, alpha):
    return (x * (math.pi / 2 * alpha)).square_().add_(1).reciprocal_().mul_(alpha / 2)


def _atan_primitive(x, alpha):
    return torch.atan(math.pi / 2 * alpha * x) / math.pi + 0.5


# -- SuperSpike: Zenke & Ganguli 2018, Eq. 10, g = 1 / (1 + beta |x|)^2 ------------------------
def _superspike_grad(x, beta):
    return (x.abs() * beta).add_(1).square_().reciprocal_()


def _superspike_primitive(x, beta):
    return x / (1 + beta * x.abs())


# -- Dspike: Li et al. 2021 (NeurIPS), Eq. 6-7: a tanh of temperature b on [-w/2, w/2] ----------
def _dspike_grad(x, b, width):
    """b / (2 w tanh(b/2)) * (1 - tanh^2(b x / w)) inside the window: unit area."""
    b, width = torch.as_tensor(b, dtype=x.dtype), torch.as_tensor(width, dtype=x.dtype)
    t = torch.tanh(x * (b / width))
    return torch.addcmul(torch.ones_like(t), t, t, value=-1.0).mul_(
        b / (2 * width * torch.tanh(b / 2))).mul_(_between(x, -width / 2, width / 2))


def _dspike_primitive(x, b, width):
    half = torch.as_tensor(width, dtype=x.dtype) / 2
    scale = torch.tanh(torch.as_tensor(b, dtype=x.dtype) / 2)
    return (torch.tanh(b * _clip(x, -half, half) / width) + scale) / (2 * scale)


# -- SLAYER's spike-escape density: Shrestha & Orchard 2018 (NeurIPS), Eq. 12 --------------------
def _exponential_grad(x, alpha, beta):
    """alpha exp(-beta |x|)."""
    return (x.abs() * -beta).exp_().mul_(alpha)


def _exponential_primitive(x, alpha, beta):
    return alpha / beta * (1 + torch.sign(x) * -torch.expm1(-beta * x.abs()))


# -- LocalZO: Mukhoty et al. 2023 (NeurIPS), Eq. 6: a local zeroth-order estimate per neuron ------
def _localzo_grad(x, delta, samples, seed):
    """mean over m draws z ~ N(0, 1) of |z| 1[|x| < delta |z|] / (2 delta): an unbiased sample of
    the Gaussian surrogate N(x; 0, delta^2). The draws come from a generator seeded by ``seed``
    (the rule's counter), so a run is reproducible and a resumed run draws what it would have."""
    generator = torch.Generator(device=x.device).manual_seed(int(seed))
    z = torch.randn((int(samples), *x.shape), generator=generator, device=x.device,
                    dtype=x.dtype).abs_()
    inside = _mask(torch.lt, x.abs().expand_as(z), z * delta)
    return inside.mul_(z).mean(0).div_(2 * delta)


def _localzo_primitive(x, delta, samples, seed):
    """The primitive of the expected surrogate, the Gaussian CDF Phi(x / delta)."""
    return 0.5 * (1 + torch.erf(x / (delta * math.sqrt(2))))


def _unbounded(*_):
    return -math.inf, math.inf


SHAPES: dict[str, Shape] = {
    s.name: s
    for s in [
        Shape("rect", ("left", "right", "area_left", "area_right"), _rect_grad, _rect_primitive,
              lambda left, right, *_: (-left, right), "asymmetric rectangle"),
        Shape("triangle", ("left", "right", "height"), _tri_grad, _tri_primitive,
              lambda left, right, *_: (-left, right), "asymmetric triangle"),
        Shape("ramp", ("left", "right", "slope", "bias"), _ramp_grad, _ramp_primitive,
              _ramp_support, "clipped ramp max(0, slope*x + bias) on [-left, right]"),
        Shape("sigmoid", ("alpha",), _sigmoid_grad, _sigmoid_primitive, _unbounded,
              "derivative of sigmoid(alpha x)"),
        Shape("atan", ("alpha",), _atan_grad, _atan_primitive, _unbounded,
              "derivative of atan(pi/2 alpha x)/pi"),
        Shape("superspike", ("beta",), _superspike_grad, _superspike_primitive, _unbounded,
              "fast-sigmoid derivative 1/(1+beta|x|)^2"),
        Shape("dspike", ("b", "width"), _dspike_grad, _dspike_primitive,
              lambda b, width: (-width / 2, width / 2), "tanh of temperature b on a window"),
        Shape("exponential", ("alpha", "beta"), _exponential_grad, _exponential_primitive,
              _unbounded, "alpha exp(-beta|x|)"),
        Shape("localzo", ("delta", "samples", "seed"), _localzo_grad, _localzo_primitive,
              _unbounded, "zeroth-order sample of a Gaussian of std delta", seed_param="seed"),
    ]
}


def get_shape(name: str) -> Shape:
    from ..errors import UserError

    if name not in SHAPES:
        raise UserError(f"unknown surrogate shape '{name}'; built-in shapes: {', '.join(SHAPES)}")
    return SHAPES[name]
