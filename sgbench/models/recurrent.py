"""Recurrent spiking networks for inputs that unfold in time (data/sequential.py).

- ``rsnn``: stacked spiking layers, each I[t] = W x[t] + b + R s[t-1] (explicit recurrence: the
  layer's own spikes fed back through its own weights at the next step, as SpikingJelly's
  ``LinearRecurrentContainer`` does), then a readout: ``count`` (a spiking output layer, its
  spikes averaged over T: the firing rate), ``membrane`` (a non-spiking leaky integrator whose
  potential, averaged over T, gives the logits, as snnTorch's tutorials read out), ``max`` (that
  potential's maximum over T, as Zenke's SpyTorch tutorials read out) or ``last`` (its value at
  the last step only). ``readout_decay`` is the integrator's leak per step.
- ``sj_feedback``: SpikingJelly's ``rsnn_sequential_fmnist`` ``FeedBackNet`` (28-32-10: a linear
  layer, a ``LinearRecurrentContainer`` around an IF neuron with a detached reset, a linear
  layer, an IF output neuron; firing rates), built from SpikingJelly's own container with the
  engine's neuron inside it.

A recurrent layer cannot run all T steps of its neuron in one pass: the input drive of all T is
one matrix product, then the neuron steps through time with the fed-back spikes added. Where the
rule fixes its thresholds before the sequence, the whole layer is one autograd node with BPTT by
hand (``neuron/recurrent.py``); otherwise the neuron takes one step at a time
(``single_step_forward``): stepwise methods (DS-ATGO) get H[t] at each step as they do in
feed-forward layers, and the rule hears of the sequence's end as after a multi-step pass.
"""
from __future__ import annotations

from typing import Callable

import torch
from spikingjelly.activation_based import layer
from torch import nn

from ..errors import UsageError
from ..neuron.recurrent import recurrent_sequence

Tensor = torch.Tensor
READOUTS = ("count", "membrane", "max", "last")


class RecurrentLayer(nn.Module):
    """x [T, B, F] -> spikes [T, B, H]: I[t] = W x[t] + b + R s[t-1], s[t] = neuron(I[t])."""

    def __init__(self, features: int, width: int, neuron: Callable[[], nn.Module],
                 recurrent: bool = True):
        super().__init__()
        self.fc = nn.Linear(features, width)
        self.rec = nn.Linear(width, width, bias=False) if recurrent else None
        self.neuron = neuron()

    def forward(self, x: Tensor) -> Tensor:
        drive = self.fc(x)  # every step's input drive in one product
        if self.rec is None:
            return self.neuron(drive)  # feed-forward: all T in one fused pass
        fused = recurrent_sequence(self.neuron, drive, self.rec.weight)
        if fused is not None:
            return fused
        # unbind, not drive[t]: each indexed step's backward would fill a zero tensor of all T
        spikes, s = [], torch.zeros_like(drive[0])
        for step in drive.unbind(0):
            s = self.neuron.single_step_forward(step + self.rec(s))
            spikes.append(s)
        spikes = torch.stack(spikes)
        if hasattr(self.neuron, "end_single_steps"):  # the engine's (not another library's)
            self.neuron.end_single_steps(spikes)
        return spikes


class LeakyReadout(nn.Module):
    """A non-spiking output layer: U[t] = k U[t-1] + W s[t] + b, returned for every step."""

    def __init__(self, features: int, classes: int, decay: float = 0.5):
        super().__init__()
        self.fc, self.decay = nn.Linear(features, classes), decay

    def forward(self, x: Tensor) -> Tensor:
        u, out = None, []
        for step in self.fc(x).unbind(0):
            u = step if u is None else self.decay * u + step
            out.append(u)
        return torch.stack(out)


class _LastStep(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x[-1:]


class _MaxOverTime(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.max(dim=0, keepdim=True).values


def rsnn(in_shape, num_classes, neuron, hidden: list[int] = (128,), recurrent: bool = True,
         readout: str = "count", readout_decay: float = 0.5) -> nn.Module:
    """Stacked (recurrent) spiking layers of the widths in ``hidden`` and a readout."""
    from . import SpikingClassifier, _positive

    _positive("model.hidden", list(hidden))
    if readout not in READOUTS:
        raise UsageError(f"model.readout must be one of {', '.join(READOUTS)}, got '{readout}'")
    if not 0 <= readout_decay < 1:
        raise UsageError(f"model.readout_decay must be in [0, 1), got {readout_decay}")
    if len(in_shape) != 1:
        raise UsageError(f"model.arch rsnn takes one feature vector per step (an encoding such "
                         f"as rows, pixels or latency); the data gives steps of shape "
                         f"{tuple(in_shape)}")
    blocks: list[nn.Module] = []
    features = in_shape[0]
    for width in hidden:
        blocks.append(RecurrentLayer(features, width, neuron, recurrent))
        features = width
    if readout == "count":
        blocks += [layer.Linear(features, num_classes), neuron()]
    else:
        blocks.append(LeakyReadout(features, num_classes, readout_decay))
        blocks += {"last": [_LastStep()], "max": [_MaxOverTime()]}.get(readout, [])
    return SpikingClassifier(nn.Sequential(*blocks))


def sj_feedback(in_shape, num_classes, neuron, width: int = 32) -> nn.Module:
    """SpikingJelly's FeedBackNet (``rsnn_sequential_fmnist``) with the engine's neuron: IF
    neurons, the recurrent one with a detached reset as there."""
    from . import SpikingClassifier, _positive

    _positive("model.width", [width])
    inner = neuron(charge="if", detach_reset=True)
    inner.step_mode = "s"  # the container steps its sub-module itself
    body = nn.Sequential(
        layer.Linear(in_shape[0], width),
        layer.LinearRecurrentContainer(inner, in_features=width, out_features=width),
        layer.Linear(width, num_classes), neuron(charge="if"))
    model = SpikingClassifier(body)
    inner.step_mode = "s"  # set_step_mode("m") above reached it too
    # the container's multi-step forward returns the inner neuron's spikes of every step
    body[1].register_forward_hook(lambda module, args, spikes: inner.end_single_steps(spikes))
    return model
