"""Building blocks of the methods' ``--protocol paper`` overlays (dotted task keys)."""
from __future__ import annotations

from typing import Any


def iterative_lif(decay: float, v_threshold: float, learnable: bool) -> dict[str, Any]:
    """H = k V (1 - S) + I with hard reset to 0, not detached (Wu et al. 2019); k = sigmoid(w)
    when learnable (the decay of the MPD-AGL / DS-ATGO code; docs/methods.md, 1.3)."""
    return {"neuron.charge": "mul", "neuron.decay": decay, "neuron.learnable_decay": learnable,
            "neuron.v_threshold": v_threshold, "neuron.reset": "hard", "neuron.v_reset": 0.0,
            "neuron.detach_reset": False}


def tdbn(scale: float, gamma: float) -> dict[str, Any]:
    """Threshold-dependent BN: gamma * scale * x_hat + beta, gamma initialised to ``gamma``."""
    return {"model.norm_scale": scale, "model.norm_gamma": gamma}


def cross_entropy(label_smoothing: float = 0.0) -> dict[str, Any]:
    return {"train.loss": "ce", "train.label_smoothing": label_smoothing}


def sgd_cosine(T: int, epochs: int, batch_size: int, lr: float, weight_decay: float
               ) -> dict[str, Any]:
    """SGD with momentum 0.9 and a cosine schedule to 0 over the epochs."""
    return {"T": T, "train.epochs": epochs, "train.batch_size": batch_size,
            "train.optimizer": "sgd", "train.lr": lr, "train.momentum": 0.9,
            "train.weight_decay": weight_decay, "train.schedule": "cosine"}
