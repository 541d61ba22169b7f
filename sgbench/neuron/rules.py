"""Layer rules: how a method gives one neuron layer its thresholds theta[t] and shape parameters p[t].

A rule is an ``nn.Module`` that lives inside the neuron, so whatever it learns or tracks (learnable
widths, running thresholds) is part of the model's ``state_dict``.

- ``sequence`` rules know theta and p for all T before the forward pass (fixed, scheduled,
  learnable, derived from parameters): the engine runs all T steps in one call.
- ``stepwise`` rules compute theta[t], p[t] from the pre-spike potential H[t] as it is produced:
  the engine runs one fire-and-reset call per step with the rule in between.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .shapes import Shape, get_shape

Tensor = torch.Tensor


class LayerRule(nn.Module):
    mode = "sequence"

    def __init__(self, shape: str | Shape):
        super().__init__()
        self.shape = shape if isinstance(shape, Shape) else get_shape(shape)

    def sequence(self, neuron: nn.Module, T: int) -> tuple[Tensor, Tensor]:
        """theta [T] and p [T, P] for a ``sequence`` rule."""
        raise NotImplementedError

    def step(self, neuron: nn.Module, t: int, h: Tensor) -> tuple[Tensor, Tensor]:
        """theta_t (scalar) and p_t [P] for a ``stepwise`` rule, from H[t]."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"shape={self.shape.name}, mode={self.mode}"


def _thresholds(neuron: nn.Module, T: int, like: Tensor) -> Tensor:
    return torch.full((T,), float(neuron.v_threshold), dtype=like.dtype, device=like.device)


class FixedRule(LayerRule):
    """The neuron's own threshold and the same shape parameters at every timestep."""

    def __init__(self, shape: str | Shape, params: Sequence[float]):
        super().__init__(shape)
        self.register_buffer("p", torch.tensor([float(v) for v in params]))

    def sequence(self, neuron, T):
        return _thresholds(neuron, T, self.p), self.p.expand(T, -1)


class LearnableRule(LayerRule):
    """Shape parameters learned per layer (shared over timesteps); the neuron's own threshold."""

    def __init__(self, shape: str | Shape, params: Sequence[float]):
        super().__init__(shape)
        self.p = nn.Parameter(torch.tensor([float(v) for v in params]))

    def sequence(self, neuron, T):
        return _thresholds(neuron, T, self.p), self.p.expand(T, -1)
