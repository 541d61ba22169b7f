"""Architectures built from SpikingJelly layers and the engine's neuron, in multi-step mode."""
from __future__ import annotations

from typing import Any, Callable

import torch
from spikingjelly.activation_based import functional, layer
from torch import nn

from ..data import check_kwargs
from ..errors import UserError
from ..method import did_you_mean
from ..neuron.node import SpikingNeuron
from .norm import Norm

NeuronFactory = Callable[[], nn.Module]


class SpikingClassifier(nn.Module):
    """Runs ``body`` on [T, B, ...] input; the logits are averaged over T."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body
        functional.set_step_mode(self, "m")

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        return self.body(x_seq).mean(0)


def convnet(in_shape: tuple[int, ...], num_classes: int, neuron: NeuronFactory,
            channels: list[int] = (16, 32), pool: int = 2, norm_scale: float = 1.0,
            norm_gamma: float = 1.0) -> nn.Module:
    """Plain spiking CNN (no residuals): [conv3x3 - BN - neuron] per entry of ``channels``,
    avg-pool, linear. ``norm_scale`` and ``norm_gamma`` set the threshold-dependent BN."""
    c, h, w = in_shape
    blocks: list[nn.Module] = []
    for out_c in channels:
        blocks += [layer.Conv2d(c, out_c, 3, padding=1, bias=False),
                   Norm(norm_scale, norm_gamma).d2(out_c), neuron()]
        c = out_c
    blocks += [layer.AvgPool2d(pool), layer.Flatten(),
               layer.Linear(c * (h // pool) * (w // pool), num_classes)]
    return SpikingClassifier(nn.Sequential(*blocks))


def check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"{what} must be one of {', '.join(choices)}; got '{value}'")


def _archs() -> dict[str, Callable[..., nn.Module]]:
    from . import resnet, vgg

    return {"convnet": convnet, "resnet19": resnet.resnet19,
            "resnet18_cifar": resnet.resnet18_cifar, "resnet20": resnet.resnet20,
            "resnet18": resnet.resnet18, "resnet34": resnet.resnet34, "vgg11": vgg.vgg11,
            "vggsnn": vgg.vggsnn, "dvsgesturenet": vgg.dvsgesturenet}


def build_model(section: dict[str, Any], neuron_section: dict[str, Any],
                in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    arch, archs = section["arch"], _archs()
    if arch not in archs:
        raise UserError(f"unknown architecture '{arch}'{did_you_mean(arch, archs)}")
    options = {k: v for k, v in section.items() if k != "arch"}
    check_kwargs(archs[arch], options, f"model ({arch})", skip=3)

    def neuron() -> nn.Module:
        return SpikingNeuron(**neuron_section)

    return archs[arch](in_shape, num_classes, neuron, **options)
