"""Architectures built from SpikingJelly layers and the engine's neuron, in multi-step mode."""
from __future__ import annotations

from typing import Any, Callable

import torch
from spikingjelly.activation_based import functional, layer
from torch import nn

from ..data import check_kwargs
from ..errors import UsageError, UserError
from ..values import did_you_mean
from ..neuron.node import SpikingNeuron
from . import static
from .pool import MaxPool2d, pool_in_neurons
from .norm import Norm

NeuronFactory = Callable[[], nn.Module]

class SpikingClassifier(nn.Module):
    """Runs ``body`` on [T, B, ...] input; the logits are averaged over T. With ``keep_steps``
    the per-timestep logits [T, B, C] of the last forward stay in ``step_logits`` (TET)."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body
        self.keep_steps = False
        self.step_logits: torch.Tensor | None = None
        functional.set_step_mode(self, "m")

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        steps = self.body(x_seq)
        self.step_logits = steps if self.keep_steps else None
        return steps.mean(0)

def convnet(in_shape: tuple[int, ...], num_classes: int, neuron: NeuronFactory,
            channels: list[int] = (16, 32), pool: int = 2, pools: list[int] | None = None,
            norm_scale: float = 1.0, norm_gamma: float = 1.0) -> nn.Module:
    """Plain spiking CNN (no residuals): [conv3x3 - BN - neuron] per entry of ``channels``, each
    followed by a max-pool of the factor in ``pools`` (1 or none: no pooling), then avg-pool
    ``pool`` and a linear head. ``norm_scale`` and ``norm_gamma`` set the threshold-dependent BN."""
    c, h, w = in_shape
    _positive("model.channels", channels)
    pools = list(pools) if pools is not None else [1] * len(channels)
    if len(pools) != len(channels) or min(pools, default=1) < 1 or pool < 1:
        raise UsageError(f"model.pools needs one factor >= 1 per entry of model.channels "
                        f"({len(channels)}), and model.pool >= 1; got {pools} and {pool}")
    blocks: list[nn.Module] = []
    for out_c, factor in zip(channels, pools):
        blocks += [static.Conv2d(c, out_c, 3, padding=1, bias=False),
                   Norm(norm_scale, norm_gamma).d2(out_c), neuron()]
        if factor > 1:
            blocks.append(MaxPool2d(factor))
            h, w = h // factor, w // factor
        c = out_c
    blocks += [layer.AvgPool2d(pool)] * (pool > 1) + [
        layer.Flatten(), layer.Linear(c * (h // pool) * (w // pool), num_classes)]
    return SpikingClassifier(nn.Sequential(*blocks))

def csnn(in_shape: tuple[int, ...], num_classes: int, neuron: NeuronFactory,
         channels: int = 128) -> nn.Module:
    """SpikingJelly's Fashion-MNIST example network (``conv_fashion_mnist``, ``CSNN``): two
    [conv3x3 - BN - neuron - max-pool 2] blocks, FC(C*7*7 -> C*4*4) - neuron, FC(-> classes) -
    neuron, both FC without bias; the output is the output layer's firing rate over T."""
    c, h, w = in_shape
    blocks: list[nn.Module] = []
    for cin in (c, channels):
        blocks += [static.Conv2d(cin, channels, 3, padding=1, bias=False),
                   Norm().d2(channels), neuron(), MaxPool2d(2, 2)]
    blocks += [layer.Flatten(), layer.Linear(channels * (h // 4) * (w // 4), channels * 16,
                                             bias=False), neuron(),
               layer.Linear(channels * 16, num_classes, bias=False), neuron()]
    return SpikingClassifier(nn.Sequential(*blocks))

MAX_CHANNELS, MAX_LAYERS = 8192, 256


def _positive(what: str, values) -> None:
    if not isinstance(values, (list, tuple)) or not 1 <= len(values) <= MAX_LAYERS or any(
            isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_CHANNELS
            for v in values):
        raise UsageError(f"{what} must be 1 to {MAX_LAYERS} integers in [1, {MAX_CHANNELS}], "
                         f"got {str(values)[:80]}")


def check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"{what} must be one of {', '.join(choices)}; got '{value}'")

def _archs() -> dict[str, Callable[..., nn.Module]]:
    from . import recurrent, resnet, vgg, zoo_archs

    return {**zoo_archs.ARCHS, "rsnn": recurrent.rsnn, "sj_feedback": recurrent.sj_feedback,
            "convnet": convnet, "csnn": csnn, "resnet19": resnet.resnet19,
            "resnet18_cifar": resnet.resnet18_cifar, "resnet20": resnet.resnet20,
            "resnet18": resnet.resnet18, "resnet34": resnet.resnet34, "vgg11": vgg.vgg11,
            "vggsnn": vgg.vggsnn, "dvsgesturenet": vgg.dvsgesturenet}

def build_model(section: dict[str, Any], neuron_section: dict[str, Any],
                in_shape: tuple[int, ...], num_classes: int,
                neuron_factory: NeuronFactory | None = None) -> nn.Module:
    """The task's architecture with the engine's neuron (or ``neuron_factory``'s, for
    benchmarks against other neuron implementations). A model in which any spiking neuron is
    not the engine's is refused: the method would not drive it."""
    arch, archs = section["arch"], _archs()
    if arch not in archs:
        raise UserError(f"unknown architecture '{arch}'{did_you_mean(arch, archs)}")
    options = {k: v for k, v in section.items() if k != "arch"}
    check_kwargs(archs[arch], options, f"model ({arch})", skip=3)

    def neuron(**position) -> nn.Module:  # zoo models pass each position's constants
        return SpikingNeuron(**{**neuron_section, **position})

    model = archs[arch](in_shape, num_classes, neuron_factory or neuron, **options)
    if neuron_factory is None:
        from .zoo import refuse_foreign_neurons
        refuse_foreign_neurons(model, arch)
    pool_in_neurons(model)
    return model
