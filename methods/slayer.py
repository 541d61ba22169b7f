"""SLAYER's exponential surrogate: dS/dU = alpha exp(-beta |U - V_th|).

Shrestha & Orchard, SLAYER: Spike Layer Error Reassignment in Time, NeurIPS 2018, Eq. 12 (the
probability density of a spike-state change). slayerPytorch scales it by the threshold:
alpha = scaleRho / (tauRho V_th), beta = 1 / (tauRho V_th), with tauRho = scaleRho = 1 in its
examples; at V_th = 1 that is alpha = beta = 1. Only the surrogate is SLAYER's: the neuron (SRM
kernels in the paper) is the task's.
"""
from dataclasses import dataclass

from sgbench.api import FixedSurrogate, param


class Slayer(FixedSurrogate):
    citation = ("Shrestha & Orchard, SLAYER, NeurIPS 2018, Eq. 12; alpha = beta = 1 "
                "(slayerPytorch tauRho = scaleRho = 1 at V_th = 1)")
    kinds = ("fixed",)
    fidelity = "paper"
    shape = "exponential"

    @dataclass
    class Params:
        alpha: float = param(1.0, gt=0)  # peak height
        beta: float = param(1.0, gt=0)  # decay rate in 1 / potential
