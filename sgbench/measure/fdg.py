"""Finite-difference gradients of the loss on the probe batch and their cosine with the surrogate
gradient: how well a surrogate points where the spiking network's real loss goes.

Li et al., Differentiable Spike, NeurIPS 2021, Eq. 4: the central difference
(L(w + eps e_i) - L(w - eps e_i)) / (2 eps) per weight w_i of the first layer, on a fixed batch
in train mode. Dspike chooses its temperature by this cosine (Alg. 1); the diagnostics record it.
"""
from __future__ import annotations

import torch
from spikingjelly.activation_based import functional
from torch import nn

from .fd_local import local_losses
from .probe import Probe, untouched

Tensor = torch.Tensor


def first_weight_layer(model: nn.Module) -> nn.Module:
    """The first convolution or linear layer in registration (forward) order."""
    return next(m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def coordinates(weight: Tensor, limit: int, seed: int) -> Tensor:
    """Flat indices of the weights to difference: all of them, or ``limit`` drawn with ``seed``."""
    n = weight.numel()
    if limit <= 0 or limit >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:limit].sort().values


def surrogate_gradient(model: nn.Module, probe: Probe, layer: nn.Module) -> Tensor:
    """dL/dW of ``layer`` through the surrogates, flattened, on the probe batch."""
    with untouched(model):
        return torch.autograd.grad(probe.loss(model), layer.weight)[0].detach().reshape(-1)


@torch.no_grad()
def finite_difference(model: nn.Module, probe: Probe, layer: nn.Module, eps: float,
                      coords: Tensor, local: bool = True) -> Tensor:
    """The central difference of the loss for each weight of ``layer`` in ``coords`` (flat); the
    model's buffers (running statistics, rule state) are restored after every forward. ``local``:
    recompute only what a weight reaches where the model allows it (``fd_local``)."""
    weight = layer.weight
    with untouched(model):
        buffers = [(b, b.clone()) for b in model.buffers()]

        def restored(result):
            functional.reset_net(model)
            for buf, saved in buffers:
                buf.copy_(saved)
            return result

        def full_loss(index: tuple, value: Tensor) -> float:
            original = weight[index].clone()
            weight[index] = value
            loss = restored(float(probe.loss(model)))
            weight[index] = original
            return loss

        loss_at = (local_losses(model, probe, layer, restored) if local else None) or full_loss
        diffs = []
        for flat in coords.tolist():
            index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), weight.shape))
            w = weight[index].clone()
            diffs.append((loss_at(index, w + eps) - loss_at(index, w - eps)) / (2 * eps))
    return torch.tensor(diffs, dtype=torch.float64)


def cosine(a: Tensor, b: Tensor) -> float | None:
    """Cosine similarity; None where either vector is zero (no signal to compare)."""
    a, b = a.double().cpu(), b.double().cpu()
    norm = float(a.norm() * b.norm())
    return float(a @ b) / norm if norm > 0 else None


def fd_cosine(model: nn.Module, probe: Probe, eps: float, limit: int, seed: int = 0
              ) -> dict[str, object]:
    """Cosine of the surrogate and the finite-difference gradient of the first layer's weights."""
    layer = first_weight_layer(model)
    coords = coordinates(layer.weight, limit, seed)
    fd = finite_difference(model, probe, layer, eps, coords)
    sg = surrogate_gradient(model, probe, layer)[coords.to(layer.weight.device)]
    return {"cosine": cosine(sg, fd), "eps": eps, "weights": int(coords.numel()),
            "of": int(layer.weight.numel())}
