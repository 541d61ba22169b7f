"""MPD-AGL: adaptive gradient learning from membrane-potential dynamics.

Jiang, Yan et al., "Adaptive Gradient Learning for Spiking Neural Networks by Exploiting Membrane
Potential Dynamics", IJCAI 2025 (arXiv 2505.11863). Follows the official code
(github.com/jqjiang1999/MPD-AGL @ 61abbf3; docs/methods.md, section 3): a rectangle of unit area
centred on the threshold, whose width is twice the assumed std of the potential,

    kappa(1)    = 2 * gamma_bar * V_th
    kappa(t>=2) = 2 * sqrt(1 + k^2) * gamma_bar * V_th

where gamma_bar is the mean weight of the BN feeding the layer and k the layer's decay, both
detached (the LSG result of Lian et al., IJCAI 2023, extended by tdBN's gamma). A width <= 0
gives no gradient, as in the code; a layer without BN falls back to width 1.
"""
from dataclasses import dataclass

import torch

from sgbench.api import (LayerContext, LayerRule, Method, cross_entropy, iterative_lif,
                         sgd_cosine, tdbn)


class MpdAglRule(LayerRule):
    def __init__(self, ctx: LayerContext):
        super().__init__("rect")
        self._gamma_mean, self._decay = ctx.gamma_mean, ctx.decay  # read at every forward

    def widths(self, v_threshold: float, T: int) -> torch.Tensor:
        gamma = self._gamma_mean()
        if gamma is None:
            return torch.ones(T)
        first = 2 * gamma * v_threshold
        later = first * (1 + self._decay() ** 2) ** 0.5
        return torch.stack([first] + [later] * (T - 1))

    def sequence(self, neuron, T):
        kappa = self.widths(neuron.v_threshold, T)
        live = kappa > 0
        half = torch.where(live, kappa / 2, torch.ones_like(kappa))
        area = live.to(kappa.dtype) * 0.5
        p = torch.stack([half, half, area, area], dim=1)
        return torch.full_like(kappa, neuron.v_threshold), p


class MpdAgl(Method):
    citation = ("Jiang, Yan et al., Adaptive Gradient Learning for SNNs by Exploiting Membrane "
                "Potential Dynamics, IJCAI 2025 (official code @ 61abbf3)")
    kinds = ("adaptive",)
    fidelity = "official-code"
    # The code's recipe (docs/methods.md, 1.2-1.3 and 3): neuron H = k V (1 - S) + I, k =
    # sigmoid(w) learnable from 0.2, V_th 0.5, hard reset not detached; tdBN scaled by
    # alpha * V_th = 0.5 with gamma initialised to 1; plain cross-entropy.
    paper_recipe = {**iterative_lif(decay=0.2, v_threshold=0.5, learnable=True),
                    **tdbn(scale=0.5, gamma=1.0), **cross_entropy()}
    paper_training = {
        "cifar10": sgd_cosine(T=2, epochs=150, batch_size=100, lr=0.1, weight_decay=1e-4),
        # no code path for CIFAR-100: the CIFAR-10 recipe (unverified)
        "cifar100": sgd_cosine(T=2, epochs=150, batch_size=100, lr=0.1, weight_decay=1e-4),
        "cifar10_dvs": sgd_cosine(T=10, epochs=150, batch_size=100, lr=0.1, weight_decay=5e-4),
    }

    @dataclass
    class Params:
        pass

    def layer_rule(self, ctx: LayerContext) -> LayerRule:
        return MpdAglRule(ctx)
