"""scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes; UCI optdigits test set).

Ships with scikit-learn, so it needs no download. The train/test split is stratified and seeded;
its seed, sizes and a hash of the test indices go into the record.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from ..errors import UsageError
from . import DataBundle
from .tensors import TensorSplit


def digits(test_fraction: float = 0.2, split_seed: int = 0) -> DataBundle:
    bad_fraction = isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float))
    if bad_fraction or not 0.01 <= test_fraction <= 0.99:
        raise UsageError(f"data.test_fraction must lie in [0.01, 0.99], got {test_fraction!r}")
    if isinstance(split_seed, bool) or not isinstance(split_seed, int) or \
            not 0 <= split_seed < 2**32:
        raise UsageError(f"data.split_seed must be an integer in [0, 2^32), got {split_seed!r}")
    raw = load_digits()
    images = torch.tensor(raw.images, dtype=torch.float32).unsqueeze(1) / 16.0  # [N, 1, 8, 8]
    labels = torch.tensor(raw.target, dtype=torch.long)
    train_idx, test_idx = train_test_split(np.arange(len(labels)), test_size=test_fraction,
                                           stratify=raw.target, random_state=split_seed)
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    mean, std = images[train_idx].mean().item(), images[train_idx].std().item()
    images = (images - mean) / std
    meta = {
        "source": "sklearn.datasets.load_digits",
        "split": {"kind": "stratified", "seed": split_seed, "test_fraction": test_fraction,
                  "n_train": len(train_idx), "n_test": len(test_idx),
                  "test_indices_sha256": hashlib.sha256(test_idx.tobytes()).hexdigest()},
        "normalisation": {"mean": mean, "std": std},
    }
    return DataBundle(TensorSplit(images[train_idx], labels[train_idx]),
                      TensorSplit(images[test_idx], labels[test_idx]),
                      num_classes=10, input_shape=(1, 8, 8), meta=meta)
