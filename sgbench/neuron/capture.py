"""What the backward pass can report about one layer: reductions of delta[t] = dL/dH[t].

SGV, TGC and CV are the gradient diagnostics of A2SG (Kang et al., ICML 2026; docs/methods.md,
section 8): SGV[T] = Var(delta[T]) / mean|delta[T]| (population variance), TGC[t] =
cos(delta[t], delta[t+1]) with eps 1e-12 in the denominator, CV = std(delta) / |mean(delta)|.
Only sums are kept, so capturing costs no memory per neuron.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

Tensor = torch.Tensor
EPS = 1e-12


@dataclass
class StepSums:
    n: int = 0
    total: float = 0.0
    squares: float = 0.0
    absolute: float = 0.0
    dot_next: float | None = None  # <delta[t], delta[t+1]>


class GradCapture:
    """Filled by the engine's backward pass with dL/dH[t] of one layer, in any time order.

    With ``keep=True`` it also keeps what the layer's BPTT needs (H, dL/dS, ...), so that
    ``deltas(p)`` recomputes dL/dH for other shape parameters: the forward pass does not depend on
    them, and the layers above do not depend on this layer's surrogate.
    """

    def __init__(self, keep: bool = False):
        self.steps: dict[int, StepSums] = {}
        self.keep = keep
        self.inputs: tuple | None = None
        self.recompute: Callable[[Tensor], Tensor] | None = None  # p -> dL/dH (recurrent layers)
        self._held: dict[int, Tensor] = {}

    def add(self, t: int, delta: Tensor) -> None:
        d = delta.detach().reshape(-1)
        self.steps[t] = StepSums(d.numel(), d.sum(dtype=torch.float64).item(),
                                 d.square().sum(dtype=torch.float64).item(),
                                 d.abs().sum(dtype=torch.float64).item())
        for other in (t - 1, t + 1):  # neighbours may arrive before or after this step
            if other in self._held:
                first, second = (other, t) if other < t else (t, other)
                dot = torch.dot(self._held[other].double(), d.double()).item()
                self.steps[first].dot_next = dot
        self._held[t] = d
        self._held.pop(t + 2, None)
        self._held.pop(t - 2, None)

    def keep_inputs(self, h_seq, v0, k, theta, grad_s, grad_v, grad_h, shape, dyn) -> None:
        if self.keep:
            self.inputs = (h_seq, v0, k, theta, grad_s, grad_v, grad_h, shape, dyn)

    def keep_recompute(self, recompute: Callable[[Tensor], Tensor]) -> None:
        """A layer whose BPTT is not the engine's sequence (a recurrent layer's): how to remake
        its dL/dH for other shape parameters p [T, P]."""
        if self.keep:
            self.recompute = recompute

    def deltas(self, p: Tensor) -> Tensor:
        """dL/dH [T, ...] of this layer had its shape parameters been ``p`` [T, P]."""
        from .engine import bptt

        if self.recompute is not None:
            with torch.no_grad():
                return self.recompute(p)
        if self.inputs is None:
            raise RuntimeError("deltas() needs a capture made with keep=True of a layer run as "
                               "one sequence")
        h_seq, v0, k, theta, grad_s, grad_v, grad_h, shape, dyn = self.inputs
        with torch.no_grad():
            return bptt(h_seq, v0, k, theta, p.to(h_seq.dtype), grad_s, grad_v, grad_h, shape,
                        dyn).delta

    def flush(self) -> None:
        """Drop the gradients held for neighbour products (called when a backward pass ends)."""
        self._held.clear()

    def release(self) -> None:
        self.flush()
        self.inputs = self.recompute = None

    # -- the diagnostics ----------------------------------------------------------------------
    @property
    def T(self) -> int:
        return max(self.steps) + 1 if self.steps else 0

    def sgv(self, scale_free: bool = False) -> float | None:
        """Spatial gradient variation at the last timestep: Var(delta[T]) / mean|delta[T]|, or
        std(delta[T]) / mean|delta[T]| with ``scale_free`` (unchanged when delta is scaled)."""
        if not self.steps:
            return None
        s = self.steps[self.T - 1]
        mean, mean_abs = s.total / s.n, s.absolute / s.n
        var = max(s.squares / s.n - mean * mean, 0.0)
        if mean_abs <= 0:
            return None
        return (math.sqrt(var) if scale_free else var) / mean_abs

    def rms_per_step(self) -> list[float]:
        """sqrt(mean(delta[t]^2)) for t = 0..T-1: how far the gradient reaches back in time."""
        return [math.sqrt(self.steps[t].squares / self.steps[t].n) if self.steps[t].n
                else math.nan for t in range(self.T)]

    def tgc_per_step(self) -> list[float]:
        """cos(delta[t], delta[t+1]) for t = 0..T-2."""
        out = []
        for t in range(self.T - 1):
            a, b = self.steps[t], self.steps[t + 1]
            dot = a.dot_next if a.dot_next is not None else math.nan
            out.append(dot / (math.sqrt(a.squares) * math.sqrt(b.squares) + EPS))
        return out

    def tgc(self) -> float | None:
        """Temporal gradient consistency: the mean over t < T of cos(delta[t], delta[t+1])."""
        values = self.tgc_per_step()
        return sum(values) / len(values) if values else None

    def cv(self) -> float | None:
        """Coefficient of variation of delta over all timesteps: std / |mean|."""
        n = sum(s.n for s in self.steps.values())
        if not n:
            return None
        mean = sum(s.total for s in self.steps.values()) / n
        var = max(sum(s.squares for s in self.steps.values()) / n - mean * mean, 0.0)
        return math.sqrt(var) / abs(mean) if mean != 0 else None

    @classmethod
    def of(cls, delta_seq: Tensor) -> "GradCapture":
        """The reductions of a whole [T, ...] tensor of dL/dH."""
        capture = cls()
        for t in range(delta_seq.shape[0] - 1, -1, -1):
            capture.add(t, delta_seq[t])
        capture.release()
        return capture
