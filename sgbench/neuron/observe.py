"""What an observed neuron records about its last forward (the diagnostics read it): per
timestep the spike rate, the mean and std of H, theta and p, a histogram of H - theta, and the
coverage of the gradient-available interval under the layer's rule and under a vanilla unit
rectangle at the neuron's own threshold."""
from __future__ import annotations

import torch

from .shapes import Shape, coverage

Tensor = torch.Tensor
HIST_RANGE, HIST_BINS = 3.0, 60  # H - theta in [-3, 3], bins of 0.1: compact enough for a record


def step_stats(h: Tensor, s: Tensor, theta: Tensor, p: Tensor, shape: Shape,
               v_threshold: float) -> dict[str, Tensor]:
    """Per timestep (h, s [T, ...], theta [T], p [T, P]): spike rate, mean/std of H, theta, p,
    the coverage of ``shape``'s support (``in_support``; DS-ATGO, AAAI 2026, Fig. 5) and of the
    vanilla reference (``in_support_vanilla``), and the histogram of H - theta; float32, CPU."""
    T = h.shape[0]
    flat_h, flat_s = h.reshape(T, -1), s.reshape(T, -1)
    own = [coverage(flat_h[t], theta[t], *shape.support(*p[t].unbind(0))) for t in range(T)]
    vanilla = [coverage(flat_h[t], v_threshold, -0.5, 0.5) for t in range(T)]
    stats = {"spike_rate": flat_s.float().mean(1), "h_mean": flat_h.mean(1),
             "h_std": flat_h.std(1) if flat_h.shape[1] > 1 else torch.zeros(T),
             "theta": theta.reshape(T), "p": p.reshape(T, -1),
             "in_support": torch.stack(own), "in_support_vanilla": torch.stack(vanilla),
             "h_hist": potential_histogram(flat_h - theta.reshape(T, 1).to(flat_h))}
    return {name: value.float().cpu() for name, value in stats.items()}


def potential_histogram(x: Tensor) -> Tensor:
    """Counts of H - theta over all timesteps: [below range, HIST_BINS bins, above range]."""
    x = x.detach().float().reshape(-1)
    inside = torch.histc(x, bins=HIST_BINS, min=-HIST_RANGE, max=HIST_RANGE)
    below, above = (x < -HIST_RANGE).sum().reshape(1), (x > HIST_RANGE).sum().reshape(1)
    return torch.cat([below.float(), inside, above.float()]).reshape(1, -1)
