"""A2SG: adaptive and asymmetric surrogate gradients (reconstruction).

Kang, Kweon, Seo et al. (KIST), ICML 2026 (arXiv 2606.11236). No code is released and the paper
body was not readable, so this reconstructs it from the abstract, a paper note and the OpenReview
reviews (docs/methods.md, section 6); every guess is a parameter.

- Surrogate (ASY): g = max(0, a (u - V_th) + h) on the window [V_th - beta, V_th + beta], with
  a = 1/(2 beta) as quoted and h the "bias term that controls the overall gradient magnitude":
  a constant, h = 1 by default (unit area at beta0 = 0.5), so g runs from h - 1/2 to h + 1/2
  across the window whatever its width. ``h=0`` ties it to the width instead, h = 1/(2 beta)
  (unit area at every beta); ``preset=ramp-unit-area``: a = 1/(2 beta^2), h = 1/(2 beta).
- Adaptive window (ST-ASG): per layer one half-width beta_T for the last timestep and one
  beta_<T for the earlier ones. Every ``i_update`` epochs, from the output layer down, on the
  probe batch: beta_T minimises SGV[T], then beta_<T maximises the mean TGC, cos(delta[t],
  delta[t+1]), with delta = dL/dH; each by GP-EI Bayesian optimisation over [beta_min,
  beta_max] (``n_obs`` starts, the current beta first, ``n_eval`` evaluations).
  The forward pass does not depend on beta and the layers above a layer do not depend on its
  surrogate, so each evaluation reruns only that layer's BPTT.

Why these defaults (docs/methods.md, section 6, with the evidence): SGV as quoted,
Var(delta)/mean|delta|, falls as delta shrinks, and a unit-area window shrinks delta as it
widens; so the first reconstruction (``sgv=var``, h = 1/(2 beta), beta in [0.1, 2]) drove
beta to 2 in most layers and the gradient reaching the first of 12 layers fell about 25-fold:
63 % on digits_deep against 88 % with the search off. The default measures SGV without its
scale (``sgv=std``, std/mean|delta|), keeps h constant as the paper describes it, searches
within a factor 2 of beta0 (the objectives keep preferring wider windows, so the range bounds
them) and starts from the current beta, which a search keeps unless it finds better. The first
reconstruction: ``--param h=0 --param sgv=var --param beta_min=0.1 --param beta_max=2
--param incumbent=false``.
"""
from dataclasses import dataclass

import torch

from sgbench.api import (GradCapture, LayerContext, LayerRule, Method, bayes_minimize, neurons,
                         param)

PRESETS = ("as-summarised", "ramp-unit-area")
SGV_FORMS = ("var", "std")


class WindowRule(LayerRule):
    """Half-widths (beta_<T, beta_T) in a buffer; ``shape_params`` maps beta [T] to p [T, P]."""

    def __init__(self, shape: str, shape_params, beta0: float):
        super().__init__(shape)
        self.shape_params = shape_params
        self.register_buffer("beta", torch.tensor([beta0, beta0]))

    def params_for(self, T: int, beta_early, beta_last) -> torch.Tensor:
        beta = torch.stack([torch.as_tensor(beta_early, dtype=torch.float64)] * (T - 1)
                           + [torch.as_tensor(beta_last, dtype=torch.float64)])
        return self.shape_params(beta)

    def sequence(self, neuron, T):
        p = self.params_for(T, self.beta[0], self.beta[1]).to(self.beta)
        return torch.full((T,), neuron.v_threshold), p


class A2SG(Method):
    citation = ("Kang, Kweon, Seo et al., A2SG: Adaptive and Asymmetric Surrogate Gradients, "
                "ICML 2026 (arXiv 2606.11236); reconstructed from secondary sources")
    kinds = ("adaptive", "asymmetric")
    fidelity = "reconstruction"
    paper_recipe = {}  # neuron and recipe unknown: the host task's own

    @dataclass
    class Params:
        preset: str = param("as-summarised", choices=PRESETS)  # slope normalisation (unverified)
        h: float = param(1.0, ge=0)  # the ramp's bias (as-summarised); 0: 1/(2 beta), unit area
        beta0: float = param(0.5, gt=0)  # initial / fixed half-width (a reviewer quotes 0.5)
        search: bool = True  # False keeps beta0: the fixed-window ablation
        i_update: int = param(1, ge=1)  # epochs between searches
        beta_min: float = param(0.25, gt=0)  # the search range: within a factor 2 of beta0
        beta_max: float = param(1.0, gt=0)
        n_obs: int = param(5, ge=1)  # evaluations before the GP proposes (incumbent included)
        n_eval: int = param(15, ge=1)  # evaluations per search
        seed: int = 0  # of the random starts (combined with epoch and layer)
        sgv: str = param("std", choices=SGV_FORMS)  # std: std/mean|d| (scale-free); var: Var/..
        incumbent: bool = True  # the current beta is evaluated first: a search never worsens it

    shape = "ramp"

    @classmethod
    def param_problems(cls, q):
        found = [] if q.beta_min <= q.beta0 <= q.beta_max else [
            f"needs beta_min <= beta0 <= beta_max; got {q.beta_min}, {q.beta0}, {q.beta_max}"]
        return found + ([] if q.n_obs <= q.n_eval else [
            f"needs n_obs <= n_eval; got {q.n_obs} and {q.n_eval}"])

    def shape_params(self, beta: torch.Tensor) -> torch.Tensor:
        """p [T, 4] = (left, right, slope, bias) of the ramp for half-widths beta [T]."""
        q = self.params
        if q.preset == "ramp-unit-area":
            return torch.stack([beta, beta, 1 / (2 * beta**2), 1 / (2 * beta)], dim=1)
        bias = torch.full_like(beta, q.h) if q.h > 0 else 1 / (2 * beta)
        slope = 1 / (2 * beta)
        return torch.stack([beta, beta, slope, bias], dim=1)

    def layer_rule(self, ctx: LayerContext) -> LayerRule:
        return WindowRule(self.shape, self.shape_params, self.params.beta0)

    def search_bounds(self):
        q = self.params
        return {"left": (q.beta_min, q.beta_max)} if q.search else {}  # left = right = beta

    def adapt(self, model, epoch, probe):
        q = self.params
        if not q.search or epoch % q.i_update:
            return
        nodes = neurons(model)
        for index in range(len(nodes) - 1, -1, -1):  # from the output layer down
            node = nodes[index]
            capture = probe.run(model, keep=[node], observe=False).captures[node]
            seed = q.seed + 1000 * epoch + index
            node.rule.beta.copy_(torch.tensor(self._search_layer(node.rule, capture, seed)))
            capture.release()

    def _search_layer(self, rule: WindowRule, capture: GradCapture, seed: int):
        q = self.params
        early, last = (float(b) for b in rule.beta)
        T = capture.T

        def reduced(beta_early, beta_last) -> GradCapture:
            return GradCapture.of(capture.deltas(rule.params_for(T, beta_early, beta_last)))

        def sgv(beta):  # S-ASG: minimise SGV at the last timestep
            value = reduced(early, beta).sgv(scale_free=q.sgv == "std")
            return float("nan") if value is None else value

        def negative_tgc(beta):  # T-ASG: maximise TGC over the earlier timesteps
            value = reduced(beta, last).tgc()
            return float("nan") if value is None else -value

        found = bayes_minimize(sgv, q.beta_min, q.beta_max, q.n_obs, q.n_eval, seed,
                               start=[last] * q.incumbent)
        last = found.x if found else last
        if T > 1:
            found = bayes_minimize(negative_tgc, q.beta_min, q.beta_max, q.n_obs, q.n_eval,
                                   seed + 500, start=[early] * q.incumbent)
            early = found.x if found else early
        return [early, last]
