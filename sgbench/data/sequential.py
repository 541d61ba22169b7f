"""Inputs that unfold in time: an image fed as a sequence, or as one spike per pixel.

- ``rows``: row-sequential, one image row per step ([B, C, H, W] -> [H, B, C * W]; T = H), as
  SpikingJelly's ``rsnn_sequential_fmnist`` example feeds Fashion-MNIST.
- ``pixels``: pixel-sequential with a fixed permutation (seed 0, the same for every run and
  method: the permuted sequential MNIST of Le, Jaitly and Hinton, arXiv:1504.00941):
  [B, C, H, W] -> [H * W, B, C]; T = H * W.
- ``latency``: each pixel fires once, earlier when brighter: the firing time of a LIF neuron
  driven by the pixel's value as a constant current, t = tau ln(x / (x - theta)) for x > theta,
  none otherwise (Zenke's SpyTorch tutorial 2, ``current2firing_time``: tau_eff 20 steps,
  theta 0.2, over T steps): [B, C, H, W] -> [T, B, C * H * W] of zeros and ones. Pixel values
  are taken in [0, 1] (a task with this encoding sets ``data.normalize: false``).
"""
from __future__ import annotations

import math

import torch

from ..errors import UserError

LATENCY_TAU, LATENCY_THRESHOLD = 20.0, 0.2  # SpyTorch tutorial 2 (tau_eff 20 ms at 1 ms steps)
PERMUTATION_SEED = 0


def sequential_step_shape(in_shape: tuple[int, ...], encoding: str) -> tuple[int, ...]:
    c, h, w = _image(in_shape, encoding)
    return {"rows": (c * w,), "pixels": (c,), "latency": (c * h * w,)}[encoding]


def steps_needed(in_shape: tuple[int, ...], encoding: str) -> int | None:
    """The T an encoding fixes (rows: the height; pixels: the pixel count), None for any."""
    c, h, w = _image(in_shape, encoding)
    return {"rows": h, "pixels": h * w}.get(encoding)


def encode_sequential(x: torch.Tensor, T: int, encoding: str) -> torch.Tensor:
    c, h, w = _image(tuple(x.shape[1:]), encoding)
    need = steps_needed(tuple(x.shape[1:]), encoding)
    if need is not None and T != need:
        raise UserError(f"the {encoding} encoding feeds {need} steps per {h}x{w} image; T={T}")
    if encoding == "rows":
        return x.permute(2, 0, 1, 3).reshape(h, len(x), c * w)
    if encoding == "pixels":
        order = permutation(h * w, x.device)
        return x.reshape(len(x), c, h * w)[:, :, order].permute(2, 0, 1)
    return latency(x.reshape(len(x), -1), T)


def permutation(n: int, device=None) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(PERMUTATION_SEED)).to(device)


def latency(x: torch.Tensor, T: int) -> torch.Tensor:
    """[B, F] values in [0, 1] -> [T, B, F] with one spike per value above the threshold."""
    x = x.clamp(0, 1)
    above = x > LATENCY_THRESHOLD
    safe = torch.where(above, x, torch.ones_like(x))
    when = LATENCY_TAU * torch.log(safe / (safe - LATENCY_THRESHOLD).clamp_min(1e-7))
    step = torch.where(above, when.floor(), torch.full_like(x, math.inf))
    times = torch.arange(T, device=x.device, dtype=x.dtype).reshape(T, 1, 1)
    return (times == step.unsqueeze(0)).to(x.dtype)


def _image(in_shape: tuple[int, ...], encoding: str) -> tuple[int, int, int]:
    if len(in_shape) != 3:
        raise UserError(f"the {encoding} encoding needs image data [C, H, W]; the data gives "
                        f"samples of shape {tuple(in_shape)}")
    return in_shape
