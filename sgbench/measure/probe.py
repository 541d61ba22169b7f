"""The probe: one fixed batch of the training split, run forward and backward in train mode
without changing the model (no optimiser step; running statistics and rule buffers restored)."""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import torch
from spikingjelly.activation_based import functional
from torch import nn

from ..data import encode
from ..data.loading import samples
from ..neuron.capture import GradCapture
from ..neuron.node import SpikingNeuron, neurons

Tensor = torch.Tensor
PROBE_SEED = 0  # the same probe samples for every method and seed of a task


@contextmanager
def untouched(model: nn.Module) -> Iterator[None]:
    """Train mode inside; afterwards buffers, gradients, neuron state and mode are as before."""
    saved = [(buf, buf.detach().clone()) for buf in model.buffers()]
    grads = [(p, p.grad) for p in model.parameters()]
    was_training = model.training
    model.train()
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)
        for p, grad in grads:
            p.grad = grad
        functional.reset_net(model)
        model.train(was_training)


@dataclass
class ProbePass:
    """What ``Probe.run`` found. ``stats[layer]`` holds per timestep (tensors [T]): spike_rate,
    h_mean, h_std, theta, p [T, P], in_support, in_support_vanilla and h_hist (a histogram of
    H - theta); ``captures[layer]`` the reductions of dL/dH (``GradCapture``: sgv, tgc, cv and,
    for layers in ``keep``, ``deltas(p)`` to rerun the layer's BPTT with other parameters)."""

    loss: float
    captures: dict[SpikingNeuron, GradCapture]  # dL/dH reductions per layer
    stats: dict[SpikingNeuron, dict[str, Tensor]]  # forward statistics per layer
    grad_norms: dict[str, float]  # ||dL/dW|| per weight layer, by module name


@dataclass
class Probe:
    """A fixed batch of the training split that searches score candidates on (``adapt``):
    ``run`` (forward and backward, dL/dH per layer), ``potentials`` (H per layer) and ``loss``.
    Neither changes the model: no optimiser step, buffers and running statistics restored."""

    x: Tensor  # encoded input [T, B, ...]
    y: Tensor
    loss_fn: Callable[[Tensor, Tensor], Tensor]
    aux_loss: Callable[[nn.Module], Tensor | None]
    indices_sha256: str

    @classmethod
    def from_dataset(cls, dataset, size: int, T: int, encoding: str, loss_fn, aux_loss,
                     device: torch.device, skip: int = 0) -> "Probe":
        """``size`` samples of ``dataset`` in a fixed order (``skip``: after the first ones)."""
        generator = torch.Generator().manual_seed(PROBE_SEED)
        index = torch.randperm(len(dataset), generator=generator)[skip:skip + size]
        x, y = samples(dataset, index)
        x, y = encode(x.to(device), T, encoding), y.to(device)
        digest = hashlib.sha256(",".join(map(str, index.tolist())).encode()).hexdigest()
        return cls(x, y, loss_fn, aux_loss, digest)

    @classmethod
    def for_run(cls, cfg: dict[str, Any], dataset, loss_fn, aux_loss, device: torch.device,
                skip: int = 0) -> "Probe":
        """The probe a run of the resolved task ``cfg`` uses: a training batch of ``dataset``."""
        return cls.from_dataset(dataset, cfg["train"]["batch_size"], cfg["T"],
                                cfg["data"]["encoding"], loss_fn, aux_loss, device, skip)

    def describe(self) -> dict[str, Any]:
        return {"size": int(self.y.shape[0]), "split": "train", "mode": "train, no update",
                "indices_sha256": self.indices_sha256}

    def loss(self, model: nn.Module) -> Tensor:
        """The training loss (with the method's auxiliary loss) of one forward of the batch."""
        loss = self.loss_fn(model(self.x), self.y)
        aux = self.aux_loss(model)
        return loss if aux is None else loss + aux

    @torch.no_grad()
    def potentials(self, model: nn.Module) -> dict[SpikingNeuron, Tensor]:
        """The pre-spike potential H [T, B, ...] of every spiking layer on the probe batch
        (one forward in train mode, no backward), detached; the model is left as it was."""
        nodes = neurons(model)
        kept = {n: n.keep_h for n in nodes}
        with untouched(model):
            for n in nodes:
                n.keep_h = True
            try:
                model(self.x)
                found = {n: n.h_seq.detach().clone() for n in nodes}
            finally:
                for n in nodes:
                    n.keep_h, n.h_seq = kept[n], None
        return found

    def run(self, model: nn.Module, keep: Iterable[SpikingNeuron] = (),
            observe: bool = True) -> ProbePass:
        """Forward and backward of the training loss; ``keep`` layers keep what their BPTT needs
        (``GradCapture.deltas``)."""
        nodes = neurons(model)
        keep = set(keep)
        captures = {n: GradCapture(keep=n in keep) for n in nodes}
        with untouched(model):
            for n in nodes:
                n.capture, n.observe = captures[n], observe
            try:
                for p in model.parameters():
                    p.grad = None
                loss = self.loss(model)
                loss.backward()
                norms = {name: float(m.weight.grad.norm()) for name, m in model.named_modules()
                         if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.grad is not None}
                stats = {n: n.stats for n in nodes} if observe else {}
            finally:
                for n in nodes:
                    n.capture, n.observe, n.stats = None, False, None
        return ProbePass(float(loss.detach()), captures, stats, norms)
