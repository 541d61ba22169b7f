"""Batch normalisation in front of spiking neurons (multi-step: statistics over T x B (x H x W)).

Two threshold-dependent conventions exist for tdBN (Zheng et al., AAAI 2021, Eq. 6:
``I = alpha V_th gamma x_hat + beta``): scale the normalised value by a constant ``alpha V_th``
with gamma initialised to 1 (the MPD-AGL code; docs/methods.md, 1.2), or initialise gamma to
``alpha V_th`` (SpikingJelly's ThresholdDependentBatchNorm, the DS-ATGO code). ``scale`` and
``gamma`` give both.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from spikingjelly.activation_based import layer
from torch import nn

from . import static


class _ThresholdScaled:
    """gamma * x_hat + beta -> gamma * scale * x_hat + beta, on top of a SpikingJelly BN."""

    def __init__(self, num_features: int, scale: float, **kwargs):
        super().__init__(num_features, **kwargs)
        self.scale = float(scale)

    def super_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rescale(super().super_forward(x))

    def rescale(self, y: torch.Tensor) -> torch.Tensor:
        shift = self.bias.view(1, -1, *([1] * (y.dim() - 2)))
        return y * self.scale + shift * (1.0 - self.scale)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", scale={self.scale}"


class ScaledBatchNorm2d(_ThresholdScaled, static.BatchNorm2d):
    """BatchNorm2d (statistics over T x B x H x W) with a constant threshold scale."""


class ScaledBatchNorm1d(_ThresholdScaled, layer.BatchNorm1d):
    """BatchNorm1d (statistics over T x B) with a constant threshold scale."""


@dataclass(frozen=True)
class Norm:
    """Builds the model's norm layers: threshold scale ``scale``, gamma initialised to ``gamma``."""

    scale: float = 1.0
    gamma: float = 1.0

    def d2(self, channels: int) -> nn.Module:
        norm = ScaledBatchNorm2d(channels, self.scale) if self.scale != 1.0 \
            else static.BatchNorm2d(channels)
        nn.init.constant_(norm.weight, self.gamma)
        return norm

    def d1(self, features: int) -> nn.Module:
        norm = ScaledBatchNorm1d(features, self.scale) if self.scale != 1.0 \
            else layer.BatchNorm1d(features)
        nn.init.constant_(norm.weight, self.gamma)
        return norm

