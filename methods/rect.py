"""Rectangular surrogate of STBP.

Wu, Deng, Li, Zhu, Shi. Spatio-Temporal Backpropagation for Training High-Performance Spiking
Neural Networks. Frontiers in Neuroscience 12:331, 2018. Eq. 9 (h1):
dS/dU = (1/a) 1{|U - V_th| < a/2}, with a = 1 in their experiments.
"""
from dataclasses import dataclass

from sgbench.api import FixedSurrogate, param


class Rect(FixedSurrogate):
    citation = "Wu et al., Frontiers in Neuroscience 2018 (STBP), Eq. 9, a=1"
    kinds = ("fixed",)
    fidelity = "paper"
    shape = "rect"

    @dataclass
    class Params:
        width: float = param(1.0, gt=0)  # a: the window's total width; height 1/a (unit area)

    def shape_params(self):
        half = self.params.width / 2
        return [half, half, 0.5, 0.5]
