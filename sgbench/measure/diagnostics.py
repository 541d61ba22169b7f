"""Gradient diagnostics on the probe batch, per spiking layer and timestep (docs/methods.md, 13).

- spike rate; coverage of the gradient-available interval under the layer's own threshold and
  surrogate and under the vanilla reference (unit rectangle at the neuron's threshold; DS-ATGO,
  AAAI 2026, Fig. 5 and 11; MPD-AGL, IJCAI 2025);
- mean and std of the pre-spike potential H; the thresholds and surrogate parameters in use;
- SGV (as A2SG defines it, Var/mean|.|, and scale-free, std/mean|.|), TGC and CV of dL/dH (A2SG,
  ICML 2026); the RMS of dL/dH per timestep (how the gradient decays backwards in time: the
  vanishing over T that Zenke and Vogels, Neural Computation 2021, discuss); the norm of dL/dW
  of the weights feeding the layer;
- a histogram of H - theta with the surrogate's support per timestep: the data of the papers'
  gradient-available-interval figure (`sgbench plot membrane`);
- the cosine of the surrogate gradient of the first layer's weights with their finite-difference
  gradient (Dspike, NeurIPS 2021, Eq. 4), on ``fd_weights`` of them drawn with a fixed seed.
"""
from __future__ import annotations

import math
import statistics
from typing import Any

import torch
from torch import nn

from ..neuron.node import preceding
from ..neuron.observe import HIST_BINS, HIST_RANGE
from .fdg import fd_cosine
from .probe import Probe

DEEP_LAYERS = 3  # "deep-layer coverage": the mean over the last three spiking layers (DS-ATGO)
FD_EPS = 0.1  # the finite-difference step (docs/methods.md, section 9)


def _floats(t: torch.Tensor) -> list:
    return [round(float(v), 6) for v in t] if t.dim() == 1 else [_floats(row) for row in t]


def _none_or(value: float | None) -> float | None:
    return None if value is None or value != value else round(value, 6)


def _significant(value: float) -> float | None:
    """Four significant digits (gradients can be 1e-9 and still say how they decay)."""
    return None if value != value else float(f"{value:.4g}")


def diagnose(model: nn.Module, probe: Probe, epoch: int, fd_weights: int = 64
             ) -> dict[str, Any]:
    """One snapshot of every diagnostic, on the probe batch, without changing the model; the FD
    cosine over ``fd_weights`` first-layer weights (0: none)."""
    result = probe.run(model)
    weights = preceding(model, (nn.Conv2d, nn.Linear))
    norms = preceding(model, (nn.modules.batchnorm._NormBase,))
    names = {m: n for n, m in model.named_modules()}
    layers = []
    for index, (node, stats) in enumerate(result.stats.items()):
        capture = result.captures[node]
        norm, weight = norms.get(node), weights.get(node)
        gamma = getattr(norm[1], "weight", None) if norm else None
        layers.append({
            "layer": index, "name": names[node], "shape": node.rule.shape.name,
            "p_names": list(node.rule.shape.params),
            "spike_rate": _floats(stats["spike_rate"]),
            "coverage": _floats(stats["in_support"]),
            "coverage_vanilla": _floats(stats["in_support_vanilla"]),
            "h_mean": _floats(stats["h_mean"]), "h_std": _floats(stats["h_std"]),
            "theta": _floats(stats["theta"]), "p": _floats(stats["p"]),
            "support": support(node.rule.shape, stats["p"]),
            "h_hist": histogram(stats["h_hist"]),
            "sgv": _none_or(capture.sgv()), "sgv_std": _none_or(capture.sgv(scale_free=True)),
            "tgc": _none_or(capture.tgc()),
            "tgc_per_step": [_none_or(v) for v in capture.tgc_per_step()],
            "grad_rms_per_step": [_significant(v) for v in capture.rms_per_step()],
            "cv": _none_or(capture.cv()),
            "grad_norm": _none_or(result.grad_norms.get(weight[0])) if weight else None,
            "decay": round(node.decay_value(), 6),
            "gamma_mean": None if gamma is None else round(float(gamma.detach().mean()), 6),
        })
    fd = fd_cosine(model, probe, FD_EPS, fd_weights) if fd_weights else None
    if fd is not None:
        fd["cosine"] = _none_or(fd["cosine"])
    return {"epoch": epoch, "loss": _none_or(result.loss), "layers": layers,
            "summary": {**summarize(layers), "fd_cosine": fd and fd["cosine"]}, "fd": fd}


def support(shape, p: torch.Tensor) -> list[list[float | None]]:
    """Per timestep, the surrogate's gradient-available interval [lo, hi] of H - theta
    (None for an unbounded side)."""
    def finite(v) -> float | None:
        v = float(v)
        return round(v, 6) if math.isfinite(v) else None

    return [[finite(b) for b in shape.support(*row.unbind(0))] for row in p]


def histogram(counts: torch.Tensor) -> dict[str, Any]:
    """The pre-spike potential histogram (H - theta, all timesteps, the probe batch)."""
    total = counts.sum(0)
    return {"range": [-HIST_RANGE, HIST_RANGE], "bins": HIST_BINS,
            "below": int(total[0]), "counts": [int(c) for c in total[1:-1]],
            "above": int(total[-1])}


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return round(statistics.fmean(kept), 6) if kept else None


def summarize(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """The network-level numbers the papers quote (layer means are unweighted, pooled over t)."""
    rate = [statistics.fmean(layer["spike_rate"]) for layer in layers]
    own = [statistics.fmean(layer["coverage"]) for layer in layers]
    vanilla = [statistics.fmean(layer["coverage_vanilla"]) for layer in layers]
    return {
        "spike_rate": _mean(rate),
        "spike_rate_layer_std": round(statistics.pstdev(rate), 6) if rate else None,
        "coverage": _mean(own), "coverage_vanilla": _mean(vanilla),
        "deep_coverage": _mean(own[-DEEP_LAYERS:]),
        "deep_coverage_vanilla": _mean(vanilla[-DEEP_LAYERS:]),
        "sgv": _mean([layer["sgv"] for layer in layers]),
        "sgv_std": _mean([layer.get("sgv_std") for layer in layers]),
        "tgc": _mean([layer["tgc"] for layer in layers]),
        "cv": _mean([layer["cv"] for layer in layers]),
    }
