"""Generated data for smoke tests: one random prototype image per class plus Gaussian noise."""
from __future__ import annotations

import torch

from ..errors import UsageError
from . import DataBundle
from .tensors import TensorSplit


def synthetic(n_train: int = 256, n_test: int = 128, n_classes: int = 4, size: int = 8,
              noise: float = 0.5, seed: int = 0) -> DataBundle:
    for name, value, low in (("n_train", n_train, 1), ("n_test", n_test, 1),
                             ("n_classes", n_classes, 2), ("size", size, 1)):
        if not low <= value <= 10**7:
            raise UsageError(f"data.{name} must lie in [{low}, 10^7], got {value}")
    gen = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(n_classes, 1, size, size, generator=gen)

    def sample(n: int) -> TensorSplit:
        labels = torch.randint(0, n_classes, (n,), generator=gen)
        images = prototypes[labels] + noise * torch.randn(n, 1, size, size, generator=gen)
        return TensorSplit(images, labels)

    meta = {"source": "generated", "seed": seed, "split": {"n_train": n_train, "n_test": n_test}}
    return DataBundle(sample(n_train), sample(n_test), n_classes, (1, size, size), meta)
