"""Spiking ResNets, built from SpikingJelly layers and the engine's neuron (multi-step).

- ``resnet19``: the CIFAR ResNet-19 of tdBN (Zheng et al., AAAI 2021) as specified in section
  1.4 of the MPD-AGL/DS-ATGO spec: stem conv3x3(128), stages 128x3, 256x3 (stride 2), 512x2
  (stride 2), then GAP, FC(512->256) - BN - neuron - FC(256->classes). ``variant=sew`` adds the
  shortcut after the block's second neuron and gives downsampling shortcuts a neuron (the
  MPD-AGL/DS-ATGO code); ``variant=tdbn`` adds before it (the original tdBN network).
- ``resnet18_cifar``: AdaLi's ``resnet18_cifar`` (docs/methods.md, 5): stem conv3x3(64), 4
  stages of 2 blocks (64-512, strides 1/2/2/2), add before the second neuron, GAP, FC.
- ``resnet20``: AdaLi's ``resnet20_cifar_modified`` (docs/methods.md, 5): 3 x conv3x3 stem,
  avg-pool 2, 4 stages of 2 blocks (64-512), average-pool-then-1x1 shortcuts, last BN of each
  block zeroed.
- ``resnet18`` / ``resnet34``: ImageNet-stem spiking ResNets from SpikingJelly's model zoo.
"""
from __future__ import annotations

from typing import Callable

import torch
from spikingjelly.activation_based import layer
from spikingjelly.activation_based.model import spiking_resnet
from torch import nn

from . import static
from .norm import Norm

NeuronFactory = Callable[[], nn.Module]
VARIANTS = ("sew", "tdbn")


def kaiming_init(model: nn.Module) -> nn.Module:
    """Kaiming-normal (fan_out, relu gain) for every conv, as in the MPD-AGL/DS-ATGO and AdaLi
    codes."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return model


class BasicBlock(nn.Module):
    """conv3x3 - BN - neuron - conv3x3 - BN, shortcut added before (tdbn) or after (sew) the
    second neuron."""

    def __init__(self, cin: int, cout: int, stride: int, neuron: NeuronFactory, norm: Norm,
                 variant: str = "tdbn", shortcut: str = "conv", zero_last_bn: bool = False):
        super().__init__()
        self.variant = variant
        self.conv1 = static.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = norm.d2(cout)
        self.sn1 = neuron()
        self.conv2 = static.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = norm.d2(cout)
        if zero_last_bn:
            nn.init.zeros_(self.bn2.weight)
        self.sn2 = neuron()
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            pool = [layer.AvgPool2d(stride, stride)] if shortcut == "avgdown" and stride > 1 \
                else []
            conv_stride = 1 if pool else stride
            self.shortcut = nn.Sequential(
                *pool, static.Conv2d(cin, cout, 1, conv_stride, bias=False), norm.d2(cout),
                *([neuron()] if variant == "sew" else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.sn1(self.bn1(self.conv1(x)))))
        if self.variant == "sew":
            return self.sn2(out) + self.shortcut(x)
        return self.sn2(out + self.shortcut(x))


def _stages(cin: int, plan: list[tuple[int, int, int]], neuron, norm, **block) -> nn.Sequential:
    blocks = []
    for width, count, stride in plan:
        for i in range(count):
            blocks.append(BasicBlock(cin, width, stride if i == 0 else 1, neuron, norm, **block))
            cin = width
    return nn.Sequential(*blocks)


def _stem(cin: int, widths: list[int], neuron, norm) -> list[nn.Module]:
    out = []
    for width in widths:
        out += [static.Conv2d(cin, width, 3, 1, 1, bias=False), norm.d2(width), neuron()]
        cin = width
    return out


def resnet19(in_shape, num_classes, neuron, variant: str = "sew", norm_scale: float = 1.0,
             norm_gamma: float = 1.0) -> nn.Module:
    from . import SpikingClassifier, check_choice

    check_choice("model.variant", variant, VARIANTS)
    norm = Norm(norm_scale, norm_gamma)
    body = nn.Sequential(
        *_stem(in_shape[0], [128], neuron, norm),
        _stages(128, [(128, 3, 1), (256, 3, 2), (512, 2, 2)], neuron, norm, variant=variant),
        layer.AdaptiveAvgPool2d(1), layer.Flatten(),
        layer.Linear(512, 256, bias=False), norm.d1(256), neuron(),
        layer.Linear(256, num_classes, bias=False))
    return SpikingClassifier(kaiming_init(body))


def resnet18_cifar(in_shape, num_classes, neuron, norm_scale: float = 1.0,
                   norm_gamma: float = 1.0) -> nn.Module:
    from . import SpikingClassifier

    norm = Norm(norm_scale, norm_gamma)
    body = nn.Sequential(
        *_stem(in_shape[0], [64], neuron, norm),
        _stages(64, [(64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)], neuron, norm),
        layer.AdaptiveAvgPool2d(1), layer.Flatten(), layer.Linear(512, num_classes))
    return SpikingClassifier(kaiming_init(body))


def resnet20(in_shape, num_classes, neuron, norm_scale: float = 1.0,
             norm_gamma: float = 1.0) -> nn.Module:
    from . import SpikingClassifier

    norm = Norm(norm_scale, norm_gamma)
    body = nn.Sequential(
        *_stem(in_shape[0], [64, 64, 64], neuron, norm), layer.AvgPool2d(2),
        _stages(64, [(64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)], neuron, norm,
                shortcut="avgdown", zero_last_bn=True),
        layer.AdaptiveAvgPool2d(1), layer.Flatten(), layer.Linear(512, num_classes))
    model = SpikingClassifier(kaiming_init(body))
    for block in model.modules():  # kaiming_init leaves BN alone; re-zero after it anyway
        if isinstance(block, BasicBlock):
            nn.init.zeros_(block.bn2.weight)
    return model


def _imagenet(builder, in_shape, num_classes, neuron, norm_scale, norm_gamma) -> nn.Module:
    from . import SpikingClassifier

    norm = Norm(norm_scale, norm_gamma)
    net = builder(spiking_neuron=lambda **_: neuron(), num_classes=num_classes,
                  norm_layer=norm.d2)
    return SpikingClassifier(net)


def resnet18(in_shape, num_classes, neuron, norm_scale: float = 1.0,
             norm_gamma: float = 1.0) -> nn.Module:
    return _imagenet(spiking_resnet.spiking_resnet18, in_shape, num_classes, neuron, norm_scale,
                     norm_gamma)


def resnet34(in_shape, num_classes, neuron, norm_scale: float = 1.0,
             norm_gamma: float = 1.0) -> nn.Module:
    return _imagenet(spiking_resnet.spiking_resnet34, in_shape, num_classes, neuron, norm_scale,
                     norm_gamma)
