"""DS-ATGO: dual-stage adaptive threshold and threshold-driven gradient optimisation.

Jiang, Xu, Fan, Yan, AAAI 2026 (arXiv 2511.13050). Follows the official code
(github.com/jqjiang1999/DS-ATGO @ 333ad21; docs/methods.md, section 4):

- forward (AT, paper Eq. 5): per layer and timestep, theta = f_c * (mean + std) of the pre-spike
  potential over the whole layer in the batch (detached, unbiased std); eval uses a running
  threshold per timestep, theta_bar <- (1 - m) theta_bar + m theta, m = 0.1, started at V0 = 1.
  Unlike the official code the running thresholds are buffers, so they are in the state_dict.
- backward (TGO, paper Eq. 7): a unit-area rectangle centred on theta with width
  kappa = k0 * (1 + tanh(x - V0)), x = std (``variant=official``, the code) or
  x = f_c (mean + std) (``variant=paper``: Eq. 7's Delta V_th, the threshold itself). With
  f_c = 1 and mean 0 the two agree.
"""
from dataclasses import dataclass

import torch

from sgbench.api import (LayerContext, LayerRule, Method, UserError, cross_entropy,
                         iterative_lif, neurons, param, sgd_cosine, std_mean, tdbn)

VARIANTS = ("official", "paper")


class AdaptiveThresholdRule(LayerRule):
    mode = "stepwise"
    detached_steps = True  # theta and kappa are statistics of H, made under no_grad

    def __init__(self, T: int, params: "DsAtgo.Params"):
        super().__init__("rect")
        self.params = params
        self.register_buffer("running_theta", torch.full((T,), float(params.v0)))
        self.extend = False  # in eval, timesteps beyond the trained T reuse the last threshold

    def step(self, neuron, t, h):
        trained = self.running_theta.numel()
        if t >= trained and not (self.extend and not self.training):
            raise UserError(f"ds_atgo keeps one running threshold per timestep for T={trained}; "
                            f"it cannot run timestep {t + 1} (evaluation at other T uses "
                            f"--eval-T)")
        t = min(t, trained - 1)
        q = self.params
        with torch.no_grad():
            std, mean = std_mean(h)
            batch_theta = q.f_c * (mean + std)  # Eq. 5
            if self.training:
                theta = batch_theta
                self.running_theta[t].lerp_(theta.to(self.running_theta), q.momentum)
            else:
                theta = self.running_theta[t].to(h)
            x = std if q.variant == "official" else batch_theta  # Eq. 7: Delta V_th
            kappa = q.k0 * (1 + torch.tanh(x - q.v0))
            half = kappa / 2
            p = torch.stack([half, half, torch.full_like(half, 0.5), torch.full_like(half, 0.5)])
        return theta, p


class DsAtgo(Method):
    citation = ("Jiang, Xu, Fan, Yan, DS-ATGO: dual-stage synergistic learning, AAAI 2026 "
                "(official code @ 333ad21)")
    kinds = ("adaptive", "threshold")
    fidelity = "official-code"
    # The code's recipe (docs/methods.md, 1.3 and 4): iterative LIF (k = sigmoid(w) from 0.2,
    # hard reset not detached), nominal threshold 1; BN gamma initialised to alpha * V_th = 1;
    # the code's label-smoothing cross-entropy (0.1; the paper says plain cross-entropy).
    paper_recipe = {**iterative_lif(decay=0.2, v_threshold=1.0, learnable=True),
                    **tdbn(scale=1.0, gamma=1.0), **cross_entropy(label_smoothing=0.1)}
    paper_training = {  # the code has CIFAR-10 only; CIFAR-100 presumed the same
        name: sgd_cosine(T=2, epochs=400, batch_size=100, lr=0.1, weight_decay=1e-4)
        for name in ("cifar10", "cifar100")}

    @dataclass
    class Params:
        f_c: float = param(1.0, gt=0)  # threshold factor ("trades off energy vs performance")
        k0: float = param(1.0, gt=0)  # base width kappa_0
        v0: float = param(1.0, gt=0)  # nominal threshold V_th^0: start of the running thresholds
        momentum: float = param(0.1, gt=0, le=1)
        variant: str = param("official", choices=VARIANTS)  # official: x = std; paper: f_c(mean+std)

    def layer_rule(self, ctx: LayerContext) -> LayerRule:
        return AdaptiveThresholdRule(ctx.T, self.params)

    def extend_to_T(self, model, T):
        for node in neurons(model):
            node.rule.extend = True
        return "running thresholds: timesteps beyond the trained T use the last one's"
