"""The contract check's test bench: a small spiking CNN with the method attached, its sizes and
input grid, and what the rules and surrogates of its layers give."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from spikingjelly.activation_based import functional
from torch import nn

from ..neuron.node import SpikingNeuron, neurons

Tensor = torch.Tensor
T = 4
GRID = torch.cat([torch.linspace(-5, 5, 4001, dtype=torch.float64),
                  torch.tensor([-1e4, -1e2, -20.0, 20.0, 1e2, 1e4], dtype=torch.float64)])
DRAWS = 400  # samples of a random surrogate whose mean is compared with the primitive's derivative
DYNAMICS = [dict(charge="tau", reset="hard", detach_reset=False),
            dict(charge="mul", reset="hard", detach_reset=False, learnable_decay=True),
            dict(charge="if", reset="soft", detach_reset=False),
            dict(charge="tau", reset="soft", detach_reset=True)]



@dataclass
class Bound:
    """A method class with the parameters every check uses."""

    cls: type
    params: object

    def __call__(self):
        return self.cls(self.params)

    def __getattr__(self, name):
        return getattr(self.cls, name)


def small_model(cls, neuron: dict | None = None, seed: int = 0, dtype=torch.float64) -> nn.Module:
    """A two-layer spiking CNN on 1x6x6 input with the method attached (``cls`` a method class
    or a ``Bound`` one)."""
    model, _ = model_and_method(cls, neuron, seed, dtype)
    return model


def model_and_method(cls, neuron: dict | None = None, seed: int = 0, dtype=torch.float64):
    from ..models import convnet

    torch.manual_seed(seed)
    model = convnet((1, 6, 6), 3, lambda: SpikingNeuron(**(neuron or {})), channels=[4, 4])
    method = cls()
    method.attach(model, T)
    return model.to(dtype), method


def rule_outputs(model: nn.Module, x: Tensor | None = None) -> list[tuple[Tensor, Tensor]]:
    """theta [T] and p [T, P] each layer used on one forward (stepwise rules included)."""
    for node in neurons(model):
        node.observe = True
    model(x if x is not None else torch.randn(T, 5, 1, 6, 6, dtype=torch.float64) + 0.5)
    out = [(node.stats["theta"], node.stats["p"]) for node in neurons(model)]
    for node in neurons(model):
        node.observe, node.stats = False, None
    functional.reset_net(model)
    return out


def each_surrogate(cls, model: nn.Module | None = None
                    ) -> list[tuple[object, tuple[Tensor, ...]]]:
    model = model if model is not None else small_model(cls)
    pairs = []
    for node, (_, p) in zip(neurons(model), rule_outputs(model)):
        for row in p.double():
            pairs.append((node.rule.shape, tuple(row.unbind(0))))
    return pairs
