"""Batch normalisation in front of spiking neurons (multi-step: statistics over T x B x H x W).

Two threshold-dependent conventions exist for tdBN (Zheng et al., AAAI 2021, Eq. 6:
``I = alpha V_th gamma x_hat + beta``): scale the normalised value by a constant ``alpha V_th``
with gamma initialised to 1 (the MPD-AGL code, spec section 1.2), or initialise gamma to
``alpha V_th`` (SpikingJelly's ThresholdDependentBatchNorm, the DS-ATGO code). ``scale`` and
``gamma`` give both.
"""
from __future__ import annotations

import torch
from spikingjelly.activation_based import layer
from torch import nn


class ScaledBatchNorm2d(layer.BatchNorm2d):
    """BatchNorm2d whose normalised value is scaled by a constant: gamma * scale * x_hat + beta."""

    def __init__(self, num_features: int, scale: float, **kwargs):
        super().__init__(num_features, **kwargs)
        self.scale = float(scale)

    def super_forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().super_forward(x)  # gamma * x_hat + beta
        shift = self.bias.view(1, -1, *([1] * (x.dim() - 2)))
        return y * self.scale + shift * (1.0 - self.scale)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", scale={self.scale}"


def batch_norm2d(channels: int, scale: float = 1.0, gamma: float = 1.0) -> nn.Module:
    """A multi-step BatchNorm2d with threshold scale ``scale`` and gamma initialised to ``gamma``."""
    norm = ScaledBatchNorm2d(channels, scale) if scale != 1.0 else layer.BatchNorm2d(channels)
    nn.init.constant_(norm.weight, gamma)
    return norm
