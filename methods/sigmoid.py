"""Sigmoid surrogate: dS/dU = alpha * s(alpha x) * (1 - s(alpha x)), x = U - V_th.

SpikingJelly's default surrogate (Fang et al., SpikingJelly, Science Advances 9, 2023;
``surrogate.Sigmoid(alpha=4)``).
"""
from dataclasses import dataclass

from sgbench.api import FixedSurrogate, param


class Sigmoid(FixedSurrogate):
    citation = "Fang et al., Science Advances 2023 (SpikingJelly surrogate.Sigmoid, alpha=4)"
    kinds = ("fixed",)
    fidelity = "paper"
    shape = "sigmoid"

    @dataclass
    class Params:
        alpha: float = param(4.0, gt=0)
