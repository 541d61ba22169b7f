"""Dataset adapters: each builds train/test datasets plus what the record should say about them."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch.utils.data import Dataset

from ..config import ENCODINGS
from ..errors import UsageError, UserError
from ..values import did_you_mean


@dataclass
class DataBundle:
    train: Dataset
    test: Dataset
    num_classes: int
    input_shape: tuple[int, ...]  # one sample, without T
    meta: dict[str, Any] = field(default_factory=dict)  # source, split, normalisation


def _registry() -> dict[str, Callable[..., DataBundle]]:
    from . import audio, neuromorphic, vision
    from .digits import digits
    from .synthetic import synthetic

    return {"digits": digits, "synthetic": synthetic, "mnist": vision.mnist,
            "fashion_mnist": vision.fashion_mnist, "cifar10": vision.cifar10,
            "cifar100": vision.cifar100, "imagenet": vision.imagenet,
            "tiny_imagenet": vision.tiny_imagenet, "cifar10_dvs": neuromorphic.cifar10_dvs,
            "dvs128_gesture": neuromorphic.dvs128_gesture, "nmnist": neuromorphic.nmnist,
            "shd": audio.shd, "ssc": audio.ssc}


def build_data(section: dict[str, Any], ctx=None) -> DataBundle:
    """The dataset named in a task's ``data`` section; builders that read files take ``ctx``
    (data root, --download, T) as their first argument."""
    from .location import DataContext

    options = {k: v for k, v in section.items() if k not in ("dataset", "encoding")}
    builders = _registry()
    name = section["dataset"]
    if name not in builders:
        raise UserError(f"unknown dataset '{name}'{did_you_mean(name, builders)}")
    builder = builders[name]
    takes_ctx = next(iter(inspect.signature(builder).parameters)) == "ctx"
    check_kwargs(builder, options, f"data ({name})", skip=int(takes_ctx))
    if not takes_ctx:
        return builder(**options)
    ctx = ctx or DataContext.resolve(None, False, 1)
    try:
        return builder(ctx, **options)
    except (RuntimeError, OSError, ValueError) as exc:  # the library's own complaint, one line
        raise UserError(f"{name}: the dataset library could not load the data under {ctx.root}: "
                        f"{type(exc).__name__}: {exc}") from exc


def check_kwargs(fn: Callable, options: dict[str, Any], what: str, skip: int = 0) -> None:
    """Builder arguments of a task: unknown keys and values of another type than the builder's
    default (a list for a list, a number for a number, ...) are configuration errors."""
    parameters = list(inspect.signature(fn).parameters.values())[skip:]
    allowed = {p.name: p.default for p in parameters}
    for key, value in options.items():
        if key not in allowed:
            raise UserError(f"unknown key '{key}' in {what}{did_you_mean(key, allowed)}; "
                            f"known: {', '.join(allowed)}")
        default = allowed[key]
        if default is inspect.Parameter.empty or default is None:
            continue
        if not _same_kind(value, default):
            raise UsageError(f"{what}: '{key}' must be like its default {default!r}, "
                             f"got {value!r}")


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and (isinstance(value, int)
                                                    or not isinstance(default, int))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple)) and all(
            _same_kind(v, default[0]) for v in value) if default else True
    return isinstance(value, type(default))




def encode(x: torch.Tensor, T: int, encoding: str) -> torch.Tensor:
    """A batch as the network's [T, B, ...] input.

    - ``direct``: [B, ...] analog input repeated at every timestep;
    - ``poisson``: rate coding, a spike with probability x (clamped to [0, 1]) per timestep;
    - ``frames``: event frames [B, T, ...] as they come from the loader;
    - ``rows``, ``pixels``, ``latency``: inputs that unfold in time (``data/sequential.py``).
    """
    if encoding == "direct":
        return x.unsqueeze(0).expand(T, *x.shape)
    if encoding == "poisson":
        p = x.clamp(0, 1).unsqueeze(0).expand(T, *x.shape)
        return torch.bernoulli(p)
    if encoding == "frames":
        if x.shape[1] != T:
            raise UserError(f"the data has {x.shape[1]} frames per sample, the run T={T}")
        return x.transpose(0, 1)
    if encoding in SEQUENTIAL:
        from .sequential import encode_sequential

        return encode_sequential(x, T, encoding)
    raise UserError(f"unknown encoding '{encoding}'; available: {', '.join(ENCODINGS)}")


SEQUENTIAL = ("rows", "pixels", "latency")  # inputs that unfold in time: data/sequential.py


def step_shape(in_shape: tuple[int, ...], encoding: str) -> tuple[int, ...]:
    """What the network sees at one timestep of a sample of ``in_shape`` under ``encoding``."""
    if encoding in SEQUENTIAL:
        from .sequential import sequential_step_shape

        return sequential_step_shape(in_shape, encoding)
    return tuple(in_shape)
