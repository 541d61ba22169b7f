"""AdaLi: adaptive and lightweight surrogate gradients.

Hou, Wu, Zhou, "Towards Adaptive and Lightweight Backpropagation for Training Spiking Neural
Networks", Frontiers in Neuroscience 2026 (doi 10.3389/fnins.2026.1795946). Follows the official
code (github.com/paran-ia/AdaLi @ b86e73b; docs/methods.md, section 5): an asymmetric
rectangle centred on the threshold, area alpha = 0.5 on [-L_e, 0) and beta = 0.5 on [0, R_e],
the same for every layer and timestep, with both widths on an epoch schedule from 1.5 to 0.3:

    log:    L(e) = L_max * e^b, b = ln(L_min / L_max) / ln(E)
    linear: L(e) = L_max + (L_min - L_max) (e - 1) / (E - 1)
    sqrt:   L(e) = L_max + (L_min - L_max) (sqrt(e) - 1) / sqrt(E - 1)   (does not reach L_min)

for epochs e = 1..E. ``timing=paper`` trains epoch e with L(e); ``timing=official`` reproduces
the released code, which updates the widths after each epoch: epochs 1 and 2 use L(1), epoch
e >= 2 uses L(e - 1). With E = 1 every schedule stays at L_max.
"""
import math
from dataclasses import dataclass

import torch

from sgbench.api import (LayerContext, LayerRule, Method, cross_entropy, neurons, param,
                         sgd_cosine, tdbn)

SCHEDULES = ("log", "linear", "sqrt")
TIMINGS = ("paper", "official")


def scheduled_width(kind: str, e: int, E: int, start: float, end: float) -> float:
    """The width at 1-based epoch ``e`` of ``E`` (docs/methods.md, section 5)."""
    if E <= 1:
        return start
    if kind == "log":
        return start * e ** (math.log(end / start) / math.log(E))
    if kind == "linear":
        return start + (end - start) * (e - 1) / (E - 1)
    return start + (end - start) * (math.sqrt(e) - 1) / math.sqrt(E - 1)


def trained_epoch_width(kind: str, timing: str, epoch: int, E: int, start: float,
                        end: float) -> float:
    """The width used while training 0-based ``epoch``."""
    e = epoch + 1 if timing == "paper" else max(epoch, 1)
    return scheduled_width(kind, e, E, start, end)


class ScheduledRectRule(LayerRule):
    def __init__(self, left: float, right: float, area_left: float, area_right: float):
        super().__init__("rect")
        self.register_buffer("widths", torch.tensor([left, right]))
        self.areas = (area_left, area_right)

    def sequence(self, neuron, T):
        p = torch.cat([self.widths, self.widths.new_tensor(self.areas)])
        return torch.full((T,), neuron.v_threshold), p.expand(T, -1)


class AdaLi(Method):
    citation = ("Hou, Wu, Zhou, Towards Adaptive and Lightweight Backpropagation for Training "
                "SNNs, Front. Neurosci. 2026 (official code @ b86e73b)")
    kinds = ("scheduled", "asymmetric")
    fidelity = "official-code"
    # The code's recipe (docs/methods.md, section 5): IF neuron (V_th 1, soft reset, not
    # detached), direct input, cross-entropy; LIF with tau 1.1 for DVS128 Gesture.
    paper_recipe = {"neuron.charge": "if", "neuron.v_threshold": 1.0, "neuron.reset": "soft",
                    "neuron.detach_reset": False, **tdbn(scale=1.0, gamma=1.0), **cross_entropy()}
    paper_training = {
        **{name: sgd_cosine(T=4, epochs=1000, batch_size=128, lr=0.1, weight_decay=1e-4)
           for name in ("cifar10", "cifar100", "tiny_imagenet")},
        # the README's mix (MSE + CE) loss for the DVS sets is not offered: CE is kept
        "cifar10_dvs": sgd_cosine(T=16, epochs=1000, batch_size=32, lr=0.05, weight_decay=1e-4),
        "dvs128_gesture": {**sgd_cosine(T=16, epochs=1000, batch_size=16, lr=0.1,
                                        weight_decay=1e-4),
                           "neuron.charge": "tau", "neuron.tau": 1.1, "neuron.decay_input": True},
    }

    @dataclass
    class Params:
        schedule: str = param("log", choices=SCHEDULES)
        timing: str = param("paper", choices=TIMINGS)  # official: the code's one-epoch lag
        left_max: float = param(1.5, gt=0)
        left_min: float = param(0.3, gt=0)
        right_max: float = param(1.5, gt=0)
        right_min: float = param(0.3, gt=0)
        alpha: float = param(0.5, gt=0)  # area left of the threshold (height alpha / L_e)
        beta: float = param(0.5, gt=0)  # area right of the threshold (height beta / R_e)

    def layer_rule(self, ctx: LayerContext) -> LayerRule:
        q = self.params
        return ScheduledRectRule(q.left_max, q.right_max, q.alpha, q.beta)

    def widths_at(self, epoch: int, epochs: int) -> tuple[float, float]:
        q = self.params
        return (trained_epoch_width(q.schedule, q.timing, epoch, epochs, q.left_max, q.left_min),
                trained_epoch_width(q.schedule, q.timing, epoch, epochs, q.right_max, q.right_min))

    def on_epoch_start(self, model, epoch, epochs):
        widths = self.widths_at(epoch, epochs)
        for node in neurons(model):
            node.rule.widths.copy_(torch.tensor(widths))
