"""LocalZO: a local zeroth-order estimate of the spike's derivative, per neuron and step.

Mukhoty, Bojkovic, de Vazelhes, Zhao, De Masi, Xiong, Gu, "Direct Training of SNN using Local
Zeroth Order Method", NeurIPS 2023. Follows the official code (github.com/BhaskarMukhoty/LocalZO,
``models/layers.py``, class ``ZO``; docs/methods.md, section 10): with u = H - V_th,

    dS/du ~ (1 / m) sum_i |z_i| 1[|u| < delta |z_i|] / (2 delta),   z_i ~ N(0, 1), m = 5, delta = 0.5

an unbiased sample of the Gaussian surrogate N(u; 0, delta^2) (paper Sec. 4). The code draws
from the global CUDA generator; sgbench draws per layer and forward from a seed made of the
run's seed, the layer and a counter kept in the state_dict: runs are reproducible and a resumed
run continues the same draws. The torch backend feeds the seed to torch's generator; the fused
kernels (numba, CUDA) to their own counter-based one (docs/methods.md, section 10): the same
distribution, another stream, so a run's numbers depend on the backend it ran.
"""
from dataclasses import dataclass

import torch

from sgbench.api import LayerContext, LayerRule, Method, iterative_lif, param

SEED_SPACE = 2**24  # seeds travel as float32 shape parameters: integers below 2^24 are exact


class LocalZoRule(LayerRule):
    def __init__(self, delta: float, samples: int, base_seed: int):
        super().__init__("localzo")
        self.delta, self.samples, self.base_seed = delta, samples, base_seed
        self.register_buffer("draws", torch.zeros((), dtype=torch.int64))

    def sequence(self, neuron, T):
        first = (self.base_seed + int(self.draws) * T) % SEED_SPACE
        seeds = (torch.arange(T, dtype=torch.float64) + first) % SEED_SPACE
        p = torch.stack([torch.full((T,), self.delta, dtype=torch.float64),
                         torch.full((T,), float(self.samples), dtype=torch.float64), seeds], 1)
        return torch.full((T,), neuron.v_threshold), p

    def end_of_sequence(self, neuron, spikes, v):
        self.draws += 1  # the next training forward draws anew


class LocalZo(Method):
    citation = ("Mukhoty et al., Direct Training of SNN using Local Zeroth Order Method, "
                "NeurIPS 2023 (official code BhaskarMukhoty/LocalZO)")
    kinds = ("fixed",)
    fidelity = "official-code"
    # The code's neuron: u = 0.5 u (1 - s) + I, threshold 1, hard reset not detached; its
    # README's CIFAR training: Adam lr 1e-3, cosine over 300 epochs, batch 64, TET (lambda 0.05).
    paper_recipe = iterative_lif(decay=0.5, v_threshold=1.0, learnable=False)
    paper_training = {name: {"train.epochs": 300, "train.batch_size": 64,
                             "train.optimizer": "adam", "train.lr": 1e-3,
                             "train.weight_decay": 0.0, "train.schedule": "cosine",
                             "train.loss": "tet", "train.tet_lambda": 0.05}
                      for name in ("cifar10", "cifar100")}

    @dataclass
    class Params:
        delta: float = param(0.5, gt=0)  # smoothing radius (std of the expected Gaussian)
        samples: int = param(5, ge=1)  # draws of z per neuron and step

    def layer_rule(self, ctx: LayerContext) -> LayerRule:
        base = (torch.initial_seed() * 7919 + ctx.index * 104729) % SEED_SPACE
        return LocalZoRule(self.params.delta, self.params.samples, base)
