"""SuperSpike surrogate: dS/dU = 1 / (1 + beta |U - V_th|)^2 (the fast sigmoid's derivative).

Zenke & Ganguli. SuperSpike: Supervised Learning in Multilayer Spiking Neural Networks. Neural
Computation 30(6), 2018. Steepness beta = 100 as in Zenke's SpyTorch tutorials (SurrGradSpike,
scale = 100, threshold 1). Note SpikingJelly's ``SuperSpike`` is a different formula.
"""
from dataclasses import dataclass

from sgbench.api import FixedSurrogate, param


class SuperSpike(FixedSurrogate):
    citation = "Zenke & Ganguli, Neural Computation 2018; beta=100 from Zenke's SpyTorch tutorial"
    kinds = ("fixed",)
    fidelity = "paper"
    shape = "superspike"

    @dataclass
    class Params:
        beta: float = param(100.0, gt=0)
