"""Layer rules: how a method gives one neuron layer its thresholds theta[t] and shape parameters p[t].

A rule is an ``nn.Module`` that lives inside the neuron, so whatever it learns or tracks (learnable
widths, running thresholds) is part of the model's ``state_dict``.

- ``sequence`` rules know theta and p for all T before the forward pass (fixed, scheduled,
  learnable, derived from parameters): the engine runs all T steps in one call.
- ``stepwise`` rules compute theta[t], p[t] from the pre-spike potential H[t] as it is produced:
  the engine runs one fire-and-reset call per step with the rule in between.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import UserError
from .shapes import Shape, get_shape

Tensor = torch.Tensor


class LayerRule(nn.Module):
    """How one spiking layer fires and is differentiated: a threshold per timestep and the
    surrogate ``shape``'s parameters per timestep. Subclass it and set ``mode``:

    - ``"sequence"`` (default): implement ``sequence(neuron, T) -> (theta [T], p [T, P])``,
      known before the forward pass (P = len(shape.params)); one engine call over all T.
    - ``"stepwise"``: implement ``step(neuron, t, h) -> (theta_t [], p_t [P])`` from the
      potentials H[t] of the batch at step t (DS-ATGO); the engine charges, asks the rule,
      then fires, one step at a time.

    Optional: ``initial_potential(neuron)`` (V[0] of a new sequence, a scalar tensor or None),
    ``end_of_sequence(neuron, spikes, v)`` (after each training forward: spikes [T, ...] and the
    final potential, detached), ``scaled_output`` (emit theta[t] S[t]) and, for a stepwise rule
    whose outputs take no gradient, ``detached_steps`` (the CPU kernels may then run it). Anything the rule
    learns or tracks must be an ``nn.Parameter`` or a registered buffer, so it is saved and
    restored with the model. The engine checks every output's shape and finiteness."""

    mode = "sequence"
    # A stepwise rule whose theta[t] and p[t] take no gradient (statistics of H, as DS-ATGO's):
    # the engine may find them in a forward pass of its own and then run the sequence fused.
    detached_steps = False
    # The neuron emits theta[t] * S[t] instead of S[t] (TrSG, Kook et al. 2026, Eq. 10): the
    # threshold's scale then cancels in dOut/dH when the surrogate's window scales with theta.
    scaled_output = False

    def __init__(self, shape: str | Shape):
        super().__init__()
        self.shape = shape if isinstance(shape, Shape) else get_shape(shape)
        self.method_name = "?"  # set by Method.attach, for error messages
        self._checked_on_cuda = False

    def thresholds(self, neuron: nn.Module, T: int) -> tuple[Tensor, Tensor]:
        """``sequence`` with its output checked: theta [T] and p [T, P], finite."""
        theta, p = self.sequence(neuron, T)
        return self._checked(theta, p, (T,), (T, len(self.shape.params)), f"for T={T}")

    def at_step(self, neuron: nn.Module, t: int, h: Tensor) -> tuple[Tensor, Tensor]:
        """``step`` with its output checked: theta_t (scalar) and p_t [P], finite."""
        theta, p = self.step(neuron, t, h)
        return self._checked(theta, p, (), (len(self.shape.params),), f"at step {t}")

    def _checked(self, theta, p, theta_shape, p_shape, when: str) -> tuple[Tensor, Tensor]:
        theta, p = torch.as_tensor(theta), torch.as_tensor(p)
        if tuple(theta.shape) != theta_shape or tuple(p.shape) != p_shape:
            raise UserError(f"method '{self.method_name}': its layer rule gave theta of shape "
                            f"{tuple(theta.shape)} and p of shape {tuple(p.shape)} {when}; the "
                            f"engine needs {theta_shape} and {p_shape} (shape "
                            f"'{self.shape.name}' has {len(self.shape.params)} parameters)")
        if theta.is_cuda and self._checked_on_cuda:  # a device sync per forward: once is enough
            return theta, p
        self._checked_on_cuda = theta.is_cuda
        if not (torch.isfinite(theta).all() and torch.isfinite(p).all()):
            raise UserError(f"method '{self.method_name}': its layer rule gave non-finite "
                            f"theta {theta.tolist()} or p {p.tolist()} {when}")
        return theta, p

    def sequence(self, neuron: nn.Module, T: int) -> tuple[Tensor, Tensor]:
        """theta [T] and p [T, P] for a ``sequence`` rule."""
        raise NotImplementedError

    def step(self, neuron: nn.Module, t: int, h: Tensor) -> tuple[Tensor, Tensor]:
        """theta_t (scalar) and p_t [P] for a ``stepwise`` rule, from H[t]."""
        raise NotImplementedError

    def initial_potential(self, neuron: nn.Module) -> Tensor | None:
        """V[0] of a new sequence, a scalar (e.g. MP-Init's running mean); None: the neuron's
        reset value."""
        return None

    def end_of_sequence(self, neuron: nn.Module, spikes: Tensor, v: Tensor) -> None:
        """After each multi-step forward in train mode: the spikes [T, ...] and the final
        potential, detached (running statistics of the rule)."""

    def extra_repr(self) -> str:
        return f"shape={self.shape.name}, mode={self.mode}"


def _thresholds(neuron: nn.Module, T: int, like: Tensor) -> Tensor:
    return torch.full((T,), float(neuron.v_threshold), dtype=like.dtype, device=like.device)


class FixedRule(LayerRule):
    """The neuron's own threshold and the same shape parameters at every timestep."""

    def __init__(self, shape: str | Shape, params: Sequence[float]):
        super().__init__(shape)
        self.register_buffer("p", torch.tensor([float(v) for v in params]))

    def sequence(self, neuron, T):
        return _thresholds(neuron, T, self.p), self.p.expand(T, -1)


class LearnableRule(LayerRule):
    """Shape parameters learned per layer (shared over timesteps); the neuron's own threshold."""

    def __init__(self, shape: str | Shape, params: Sequence[float]):
        super().__init__(shape)
        self.p = nn.Parameter(torch.tensor([float(v) for v in params]))

    def sequence(self, neuron, T):
        return _thresholds(neuron, T, self.p), self.p.expand(T, -1)
