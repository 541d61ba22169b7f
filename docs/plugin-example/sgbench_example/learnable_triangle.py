"""A learnable rule: a unit-area triangle whose half-width w is learned per layer.

g(x) = (1/w) max(0, 1 - |x| / w) on the built-in ``triangle`` shape; w receives its gradient
through the shape's primitive, is trained at ``lr_scale`` times the task's learning rate without
weight decay, and is clamped to [w_min, w_max] after every step.
"""
from dataclasses import dataclass

import torch
from torch import nn

from sgbench.api import LayerContext, LayerRule, Method, neurons, param


class LearnableWidth(LayerRule):
    def __init__(self, width: float):
        super().__init__("triangle")  # parameters: left, right, height
        self.width = nn.Parameter(torch.tensor(float(width)))

    def sequence(self, neuron, T):
        w = self.width
        p = torch.stack([w, w, 1 / w])  # unit area: height 1/w
        return torch.full((T,), neuron.v_threshold), p.expand(T, -1)


class LearnableTriangle(Method):
    name = "learnable_triangle"
    citation = "sgbench plugin example (a learnable-width triangle)"
    kinds = ("learnable",)
    fidelity = "paper"

    @dataclass
    class Params:
        width: float = param(1.0, gt=0)  # initial half-width
        w_min: float = param(0.1, gt=0)
        w_max: float = param(3.0, gt=0)
        lr_scale: float = param(0.01, ge=0)

    @classmethod
    def param_problems(cls, q):
        return [] if q.w_min <= q.width <= q.w_max else ["needs w_min <= width <= w_max"]

    def layer_rule(self, ctx: LayerContext) -> LayerRule:
        return LearnableWidth(self.params.width)

    def param_groups(self, model):
        widths = [node.rule.width for node in neurons(model)]
        return [{"params": widths, "lr_scale": self.params.lr_scale, "weight_decay": 0.0}]

    def on_train_batch_end(self, model, step):
        with torch.no_grad():
            for node in neurons(model):
                node.rule.width.clamp_(self.params.w_min, self.params.w_max)
