"""The training recipe of a task's ``train`` section: optimizer (with a method's own parameter
groups), schedule, loss and mixed precision."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from ..method import Method


def param_groups(model: nn.Module, method: Method, train: dict[str, Any]) -> list[dict[str, Any]]:
    """The method's own groups (their lr scaled by ``lr_scale``), then every other parameter."""
    groups, claimed = [], set()
    for group in method.param_groups(model):
        params = list(group["params"])
        claimed.update(id(p) for p in params)
        groups.append({"params": params, "lr": train["lr"] * group.get("lr_scale", 1.0),
                       "weight_decay": group.get("weight_decay", train["weight_decay"])})
    rest = [p for p in model.parameters() if id(p) not in claimed]
    return [{"params": rest}] + groups


def make_optimizer(model: nn.Module, train: dict[str, Any], method: Method
                   ) -> torch.optim.Optimizer:
    lr, wd = train["lr"], train["weight_decay"]
    params = param_groups(model, method, train)
    if train["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if train["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if train["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=train["momentum"], weight_decay=wd)
    raise UserError(f"train.optimizer must be adam, adamw or sgd; got '{train['optimizer']}'")


def make_schedule(optimizer, train: dict[str, Any]):
    if train["schedule"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=train["epochs"])
    if train["schedule"] == "constant":
        return None
    raise UserError(f"train.schedule must be cosine or constant; got '{train['schedule']}'")


class RateMSE(nn.Module):
    """Mean squared error between the output (a firing rate over T) and the one-hot label: the
    loss of SpikingJelly's examples (e.g. ``conv_fashion_mnist``)."""

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(out, nn.functional.one_hot(y, out.shape[1]).to(out.dtype))


class TETLoss(nn.Module):
    """Temporal efficient training (Deng et al., ICLR 2022, Eq. 9 and 12): the cross-entropy of
    every timestep's logits O_t, averaged over t, plus lambda times the mean squared distance of
    all logits from phi: (1 - lambda) mean_t CE(O_t, y) + lambda MSE(O, phi). It reads the
    classifier's per-timestep logits of the forward that produced ``logits``."""

    def __init__(self, classifier: nn.Module, lam: float, phi: float, label_smoothing: float):
        super().__init__()
        if not hasattr(classifier, "keep_steps"):
            raise UserError(f"train.loss: tet needs per-timestep logits, which a "
                            f"{type(classifier).__name__} does not keep")
        classifier.keep_steps = True
        self.classifier, self.lam, self.phi = [classifier], lam, phi  # a list: not a submodule
        self.ce = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        steps = self.classifier[0].step_logits
        if steps is None or steps.shape[1:] != logits.shape:
            raise RuntimeError("TETLoss: no per-timestep logits of this forward")
        steps = steps.float()
        per_step = torch.stack([self.ce(o, y) for o in steps]).mean()
        if not self.lam:
            return per_step
        return (1 - self.lam) * per_step + self.lam * (steps - self.phi).square().mean()


def make_loss(train: dict[str, Any], classifier: nn.Module | None = None) -> nn.Module:
    if train["loss"] == "ce":
        return nn.CrossEntropyLoss(label_smoothing=train["label_smoothing"])
    if train["loss"] == "mse":
        return RateMSE()
    if train["loss"] == "tet":
        return TETLoss(classifier, train["tet_lambda"], train["tet_phi"], train["label_smoothing"])
    raise UserError(f"train.loss must be ce, mse or tet; got '{train['loss']}'")


@dataclass
class Precision:
    """Mixed precision (fp16 autocast with loss scaling), on CUDA only, and channels-last
    storage of images and feature maps, on every device (on CPU, oneDNN's convolutions and
    PyTorch's batch norm run faster on it, and the numba neuron kernels read it in place)."""

    amp: bool = False
    channels_last: bool = False

    @classmethod
    def for_device(cls, train: dict[str, Any], device: torch.device) -> "Precision":
        cuda = device.type == "cuda"
        return cls(train["amp"] and cuda, train["channels_last"])

    def place(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` on ``device``, its weights stored channels-last where that is on."""
        return model.to(device, memory_format=torch.channels_last if self.channels_last else
                        torch.preserve_format)

    def input(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.float16, enabled=self.amp)
