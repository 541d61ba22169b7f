"""Dspike: the differentiable-spike family, its temperature chosen by finite differences.

Li, Guo, Zhang, Deng, Hai, Gu, "Differentiable Spike: Rethinking Gradient-Descent for Training
Spiking Neural Networks", NeurIPS 2021 (docs/methods.md, section 9). No code was readable; from
the paper:

- Surrogate (Eq. 6-7): on the window |H - V_th| <= width/2 the spike is relaxed to
  (tanh(b x / width) + tanh(b / 2)) / (2 tanh(b / 2)), x = H - V_th, whose derivative
  b / (2 width tanh(b / 2)) (1 - tanh^2(b x / width)) has unit area; b is the temperature
  (small b: a rectangle, large b: a spike at the threshold).
- Temperature (Alg. 1): at the start of every epoch, the finite-difference gradient (FDG, Eq. 4)
  of the first layer's weights on a fixed training batch with step ``fd_eps``; of the
  temperatures {b, b + step, b - step} the one whose surrogate gradient of those weights has the
  highest cosine with the FDG becomes b. One b for the whole network.

The paper's b0, step and eps were not readable: b0 = 3, step 0.5, eps 0.1 are sgbench's
choices (parameters; smaller steps measure mostly the loss's jumps).

Deviation: Alg. 1 differences every first-layer weight, two forwards each, so its cost grows with
that layer (144 weights on the Fashion tasks: 10-27 % of an epoch; 3,584 on sfmnist: four
epochs' worth). sgbench differences ``fd_weights`` = 48 weights by default, drawn afresh each
epoch, so the search costs 96 forwards of the probe batch whatever the network; ``fd_weights=0``
is the paper's whole layer. Measured (docs/methods.md, section 9): the temperature that 48 drawn
weights choose gives up, on average, a third as much of the whole layer's cosine as choosing on
another probe batch of the same size does, which Alg. 1 leaves to chance anyway.
"""
from dataclasses import dataclass

import torch

from sgbench.api import (LayerContext, LayerRule, Method, coordinates, cosine, finite_difference,
                         first_weight_layer, neurons, param, surrogate_gradient)


class TemperatureRule(LayerRule):
    """The window's temperature b in a buffer (all layers hold the same b)."""

    def __init__(self, b0: float, width: float):
        super().__init__("dspike")
        self.width = width
        self.register_buffer("b", torch.tensor(float(b0)))

    def sequence(self, neuron, T):
        p = torch.stack([self.b, torch.full_like(self.b, self.width)])
        return torch.full((T,), neuron.v_threshold), p.expand(T, -1)


class Dspike(Method):
    citation = ("Li, Guo, Zhang, Deng, Hai, Gu, Differentiable Spike: Rethinking Gradient-Descent "
                "for Training SNNs, NeurIPS 2021 (Eq. 6-7, Alg. 1)")
    kinds = ("adaptive",)
    fidelity = "paper"

    @dataclass
    class Params:
        b0: float = param(3.0, gt=0)  # initial temperature
        width: float = param(1.0, gt=0)  # the window (the paper's [0, 1] around V_th = 0.5)
        search: bool = True  # False keeps b0: the fixed Dspike surrogate
        step: float = param(0.5, gt=0)  # temperature step of Alg. 1
        b_min: float = param(0.1, gt=0)  # candidates below are skipped
        fd_eps: float = param(0.1, gt=0)  # finite-difference step (absolute, in weight units)
        fd_weights: int = param(48, ge=0)  # weights differenced; 0: the whole first layer
        seed: int = 0  # of the drawn weights (combined with the epoch)

    def layer_rule(self, ctx: LayerContext) -> LayerRule:
        return TemperatureRule(self.params.b0, self.params.width)

    def search_bounds(self):
        return {"b": (self.params.b_min, None)} if self.params.search else {}

    def adapt(self, model, epoch, probe):
        q = self.params
        if not q.search:
            return
        rules = [node.rule for node in neurons(model)]
        layer = first_weight_layer(model)
        coords = coordinates(layer.weight, q.fd_weights, q.seed + epoch)
        fdg = finite_difference(model, probe, layer, q.fd_eps, coords)
        b = float(rules[0].b)
        scores = {}
        for candidate in (b, b + q.step, b - q.step):
            if candidate < q.b_min:
                continue
            for rule in rules:
                rule.b.fill_(candidate)
            grad = surrogate_gradient(model, probe, layer)[coords.to(layer.weight.device)]
            scores[candidate] = cosine(grad, fdg)
        known = {c: s for c, s in scores.items() if s is not None}
        best = max(known, key=known.get) if known else b  # ties keep the current b
        for rule in rules:
            rule.b.fill_(best)
