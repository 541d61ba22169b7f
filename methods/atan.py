"""Arctangent surrogate: dS/dU = alpha / (2 (1 + (pi/2 alpha x)^2)), x = U - V_th.

Fang et al. Incorporating Learnable Membrane Time Constant to Enhance Learning of Spiking Neural
Networks. ICCV 2021 (alpha = 2; SpikingJelly ``surrogate.ATan``).
"""
from dataclasses import dataclass

from sgbench.api import FixedSurrogate, param


class ATan(FixedSurrogate):
    citation = "Fang et al., ICCV 2021 (PLIF), ATan surrogate, alpha=2"
    kinds = ("fixed",)
    fidelity = "paper"
    shape = "atan"

    @dataclass
    class Params:
        alpha: float = param(2.0, gt=0)
