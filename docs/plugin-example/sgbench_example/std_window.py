"""An adaptive window: a unit-area rectangle whose half-width per layer follows the spread of
that layer's potentials on the probe batch.

At every epoch's start (``adapt``), from the pre-spike potentials H [T, B, ...] of each layer on
the probe batch (``probe.potentials``), the half-width becomes ``scale * std(H)``, clamped to
[w_min, w_max]: a layer whose potentials spread wider gets a wider window, so a similar share of
them keeps a gradient (the idea behind DS-ATGO's and MPD-AGL's widths; cite the paper and the
equation a real method takes its rule from). The search's range is declared, so records keep
the chosen width per layer and `compare` flags a width stuck at a bound.
"""
from dataclasses import dataclass

import torch

from sgbench.api import LayerRule, Method, neurons, param


class Window(LayerRule):
    """rect with half-widths (w, w) and areas (1/2, 1/2): height 1 / (2 w)."""

    def __init__(self, width: float):
        super().__init__("rect")  # parameters: left, right, area_left, area_right
        self.register_buffer("width", torch.tensor(float(width)))  # saved with the model

    def sequence(self, neuron, T):
        w = self.width
        half = torch.full_like(w, 0.5)
        return torch.full((T,), neuron.v_threshold), torch.stack([w, w, half, half]).expand(T, -1)


class StdWindow(Method):
    name = "std_window"
    citation = "sgbench plugin example (a window set from the potentials on the probe batch)"
    kinds = ("adaptive",)
    fidelity = "paper"

    @dataclass
    class Params:
        width0: float = param(0.5, gt=0)  # before the first search
        scale: float = param(1.0, gt=0)  # half-width = scale * std(H)
        w_min: float = param(0.1, gt=0)
        w_max: float = param(2.0, gt=0)

    @classmethod
    def param_problems(cls, q):
        return [] if q.w_min <= q.width0 <= q.w_max else [
            f"needs w_min <= width0 <= w_max; got {q.w_min}, {q.width0}, {q.w_max}"]

    def layer_rule(self, ctx):
        return Window(self.params.width0)

    def adapt(self, model, epoch, probe):
        q = self.params
        for layer, h in probe.potentials(model).items():  # H [T, B, ...] per spiking layer
            layer.rule.width.fill_(float(h.float().std().clamp(q.w_min / q.scale,
                                                                q.w_max / q.scale)) * q.scale)

    def search_bounds(self):
        return {"left": (self.params.w_min, self.params.w_max)}
