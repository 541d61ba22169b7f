"""Triangular surrogate (pseudo-derivative) max(0, 1 - |U - V_th| / w).

Esser et al. Convolutional networks for fast, energy-efficient neuromorphic computing. PNAS 113(41),
2016; used as the "triangular pseudo-derivative" by Bellec et al., NeurIPS 2018 (who damp it by
gamma = 0.3: ``--param height=0.3``). Defaults: half-width 1 (in units of the threshold), height 1.
"""
from dataclasses import dataclass

from sgbench.api import FixedSurrogate, param


class Triangle(FixedSurrogate):
    citation = "Esser et al., PNAS 2016 (triangle, width 1, height 1); Bellec et al., NeurIPS 2018"
    kinds = ("fixed",)
    fidelity = "paper"
    shape = "triangle"

    @dataclass
    class Params:
        width: float = param(1.0, gt=0)  # half-width on each side of the threshold
        height: float = param(1.0, gt=0)

    def shape_params(self):
        return [self.params.width, self.params.width, self.params.height]
