"""PSG + PDA: parametric surrogate gradient and potential distribution adjustment (reconstruction).

Wang, Cheng, Lim, "Potential distribution adjustment and parametric surrogate gradient in spiking
neural networks", Neurocomputing 620:129189, 2025 (arXiv 2304.13289). Only the abstract was
readable and no code is public; this is a "PSG/PDA-style" reconstruction (docs/methods.md,
section 7), every choice a parameter:

- PSG: per spiking layer a learnable half-width w of a unit-area rectangle centred on the
  threshold, clamped to [width_min, width_max], trained with the task's optimizer at
  ``lr_scale`` times its learning rate and no weight decay (dL/dw through the surrogate).
- PDA: pda * sum over layers of D_sym(N(mu_l, sigma_l^2) || N(mu*, sigma*^2)), a Gaussian fit of
  the pre-spike potential over batch, time and neurons against a target; D_sym is the symmetric
  KL, (1/4) [(s1^2 + d^2) / s2^2 + (s2^2 + d^2) / s1^2 - 2], d = mu1 - mu2. The target is
  mu* = target_mean * V_th, sigma* = target_std * V_th. ``pda=0`` turns PDA off.
"""
from dataclasses import dataclass

import torch
from torch import nn

from sgbench.api import LayerContext, LayerRule, Method, iterative_lif, neurons, param, var_mean


class LearnableWidthRule(LayerRule):
    def __init__(self, width: float, low: float, high: float):
        super().__init__("rect")
        self.width = nn.Parameter(torch.tensor(float(width)))
        self.bounds = (low, high)

    def sequence(self, neuron, T):
        w = self.width.clamp(*self.bounds)
        half = torch.full_like(w, 0.5)
        return torch.full((T,), neuron.v_threshold), torch.stack([w, w, half, half]).expand(T, -1)


def symmetric_kl(mu1, var1, mu2, var2):
    """(KL(N1 || N2) + KL(N2 || N1)) / 2 for univariate Gaussians."""
    d2 = (mu1 - mu2) ** 2
    return ((var1 + d2) / var2 + (var2 + d2) / var1 - 2) / 4


class PsgPda(Method):
    citation = ("Wang, Cheng, Lim, Potential distribution adjustment and parametric surrogate "
                "gradient in SNNs, Neurocomputing 620:129189, 2025; PSG/PDA-style reconstruction")
    kinds = ("learnable",)
    fidelity = "reconstruction"
    # The neuron of the authors' earlier LTMD code (NeurIPS 2022; context only): u = 0.25 u (1 - o)
    # + I with hard reset; LTMD learns the threshold from tanh(0.5) ~ 0.46, fixed at 0.5 here.
    paper_recipe = iterative_lif(decay=0.25, v_threshold=0.5, learnable=False)

    @dataclass
    class Params:
        width: float = param(0.5, gt=0)  # initial half-width (LTMD's a = 0.5)
        width_min: float = param(0.05, gt=0)
        width_max: float = param(2.0, gt=0)
        lr_scale: float = param(1e-3, ge=0)  # of the task's learning rate
        pda: float = param(0.1, ge=0)  # weight of the PDA loss; 0 turns it off
        target_mean: float = 0.5  # mu* in units of the threshold
        target_std: float = param(0.5, gt=0)  # sigma* in units of the threshold

    @classmethod
    def param_problems(cls, q):
        return [] if q.width_min <= q.width <= q.width_max else [
            f"needs width_min <= width <= width_max; got {q.width_min}, {q.width}, {q.width_max}"]

    def layer_rule(self, ctx: LayerContext) -> LayerRule:
        q = self.params
        ctx.neuron.keep_h = q.pda > 0
        return LearnableWidthRule(q.width, q.width_min, q.width_max)

    def search_bounds(self):
        return {"left": (self.params.width_min, self.params.width_max)}  # the clamp

    def param_groups(self, model):
        widths = [node.rule.width for node in neurons(model)]
        return [{"params": widths, "lr_scale": self.params.lr_scale, "weight_decay": 0.0}]

    def on_train_batch_end(self, model, step):
        with torch.no_grad():
            for node in neurons(model):
                node.rule.width.clamp_(self.params.width_min, self.params.width_max)

    def aux_loss(self, model):
        q = self.params
        terms = []
        for node in neurons(model):
            h, node.h_seq = node.h_seq, None
            if h is None:
                continue
            var, mean = var_mean(h)
            mu, sigma = q.target_mean * node.v_threshold, q.target_std * node.v_threshold
            terms.append(symmetric_kl(mean, var.clamp_min(1e-12), mu, sigma**2))
        return q.pda * torch.stack(terms).sum() if terms and q.pda > 0 else None
