"""Spiking VGGs and the DVS128 Gesture network (multi-step, the engine's neuron).

- ``vgg11``: AdaLi's VGG-11-BN (docs/methods.md, 5): [64 M] [128 M] [256 256 M] [512 512 M]
  [512 512 M], conv3x3 (bias) - BN - neuron, M = 2x2 average pool, adaptive average pool 7x7, FC.
- ``vggsnn``: the VGGSNN of TET (Deng et al., ICLR 2022) for 48x48 CIFAR10-DVS, as in the MPD-AGL
  code (docs/methods.md, 1.5): 64, 128, AP, 256, 256, AP, 512, 512, AP, 512, 512, AP,
  FC(4608 -> classes).
- ``dvsgesturenet``: SpikingJelly's DVSGestureNet (Fang et al., ICCV 2021): 5 x [conv3x3(128) -
  BN - neuron - max-pool 2], dropout, FC(2048->512) - neuron, dropout, FC(512->10 x classes) -
  neuron, voting over groups of 10.
"""
from __future__ import annotations

from spikingjelly.activation_based import layer
from torch import nn

from . import static
from .pool import MaxPool2d
from .norm import Norm
from .resnet import kaiming_init

VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
VGGSNN = [64, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


def _features(cin: int, plan: list, neuron, norm: Norm, bias: bool) -> list[nn.Module]:
    out = []
    for item in plan:
        if item == "M":
            out.append(layer.AvgPool2d(2, 2))
        else:
            out += [static.Conv2d(cin, item, 3, padding=1, bias=bias), norm.d2(item), neuron()]
            cin = item
    return out


def vgg11(in_shape, num_classes, neuron, norm_scale: float = 1.0,
          norm_gamma: float = 1.0) -> nn.Module:
    from . import SpikingClassifier

    fc = layer.Linear(512 * 7 * 7, num_classes)
    nn.init.normal_(fc.weight, 0, 0.01), nn.init.zeros_(fc.bias)
    body = nn.Sequential(*_features(in_shape[0], VGG11, neuron, Norm(norm_scale, norm_gamma),
                                    bias=True),
                         layer.AdaptiveAvgPool2d(7), layer.Flatten(), fc)
    return SpikingClassifier(kaiming_init(body))


def vggsnn(in_shape, num_classes, neuron, norm_scale: float = 1.0,
           norm_gamma: float = 1.0) -> nn.Module:
    from . import SpikingClassifier

    side = in_shape[1] // 16
    body = nn.Sequential(*_features(in_shape[0], VGGSNN, neuron, Norm(norm_scale, norm_gamma),
                                    bias=False),
                         layer.Flatten(), layer.Linear(512 * side * side, num_classes))
    return SpikingClassifier(kaiming_init(body))


def dvsgesturenet(in_shape, num_classes, neuron, channels: int = 128, norm_scale: float = 1.0,
                  norm_gamma: float = 1.0) -> nn.Module:
    from . import SpikingClassifier

    norm, layers, cin = Norm(norm_scale, norm_gamma), [], in_shape[0]
    for _ in range(5):
        layers += [static.Conv2d(cin, channels, 3, padding=1, bias=False), norm.d2(channels),
                   neuron(), MaxPool2d(2, 2)]
        cin = channels
    side = in_shape[1] // 32
    body = nn.Sequential(
        *layers, layer.Flatten(), layer.Dropout(0.5),
        layer.Linear(channels * side * side, 512), neuron(), layer.Dropout(0.5),
        layer.Linear(512, num_classes * 10), neuron(), layer.VotingLayer(10))
    return SpikingClassifier(body)
