"""Dataset adapters: each builds train/test datasets plus what the record should say about them."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch.utils.data import Dataset

from ..errors import UserError
from ..method import did_you_mean


@dataclass
class DataBundle:
    train: Dataset
    test: Dataset
    num_classes: int
    input_shape: tuple[int, ...]  # one sample, without T
    meta: dict[str, Any] = field(default_factory=dict)  # source, split, normalisation


def _registry() -> dict[str, Callable[..., DataBundle]]:
    from .digits import digits
    from .synthetic import synthetic

    return {"digits": digits, "synthetic": synthetic}


def build_data(section: dict[str, Any]) -> DataBundle:
    options = {k: v for k, v in section.items() if k not in ("dataset", "encoding")}
    builders = _registry()
    name = section["dataset"]
    if name not in builders:
        raise UserError(f"unknown dataset '{name}'{did_you_mean(name, builders)}")
    check_kwargs(builders[name], options, f"data ({name})")
    return builders[name](**options)


def check_kwargs(fn: Callable, options: dict[str, Any], what: str, skip: int = 0) -> None:
    """Unknown keyword arguments for a builder are configuration errors, not TypeErrors."""
    allowed = list(inspect.signature(fn).parameters)[skip:]
    for key in options:
        if key not in allowed:
            raise UserError(f"unknown key '{key}' in {what}{did_you_mean(key, allowed)}; "
                            f"known: {', '.join(allowed)}")


def encode(x: torch.Tensor, T: int, encoding: str) -> torch.Tensor:
    """[B, ...] -> [T, B, ...]. ``direct``: the same (analog) input at every timestep."""
    if encoding == "direct":
        return x.unsqueeze(0).expand(T, *x.shape)
    raise UserError(f"unknown encoding '{encoding}'; available: direct")
