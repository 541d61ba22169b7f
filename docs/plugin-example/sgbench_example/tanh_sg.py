"""A fixed surrogate with its own shape: the derivative of a scaled tanh.

g(x) = beta / 2 * (1 - tanh(beta x)^2), the derivative of F(x) = (tanh(beta x) + 1) / 2, where
x = H - theta. (Cite the paper and the equation a real method takes its formula from.)
"""
from dataclasses import dataclass

import torch

from sgbench.api import FixedSurrogate, Shape, param


def grad(x, beta):
    """g(x; beta): must not change x, must be >= 0 and zero outside ``support``."""
    return 0.5 * beta * (1 - torch.tanh(beta * x) ** 2)


def primitive(x, beta):
    """F with F' = g: learnable parameters of a shape are trained through it."""
    return 0.5 * (torch.tanh(beta * x) + 1)


def support(beta):
    """Where g > 0, in x = H - theta (unbounded here)."""
    return float("-inf"), float("inf")


TANH = Shape("tanh_sg", ("beta",), grad, primitive, support, "derivative of (tanh(beta x) + 1)/2")


class TanhSG(FixedSurrogate):
    name = "tanh_sg"  # the same name whether loaded by entry point or by path
    citation = "sgbench plugin example (a scaled tanh surrogate)"
    kinds = ("fixed",)
    fidelity = "paper"
    shape = TANH  # its parameters are read from the Params fields of the same names

    @dataclass
    class Params:
        beta: float = param(2.0, gt=0)  # steepness; --param beta=4 overrides
