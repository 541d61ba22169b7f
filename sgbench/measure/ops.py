"""Operations and energy per sample: synaptic operations (accumulates driven by spikes) and MACs
(real-valued inputs) counted by SpikingJelly 2.x's ``op_counter``, and an energy estimate.

Conventions, pinned down:
- Counted per conv (2-D, and 1-D: the token-wise projections of spiking transformers) / linear
  layer: SpikingJelly's ``SynOpCounter`` counts exact weight uses of
  binary inputs (a conv's padding and borders included), ``MACCounter`` dense MACs of real-valued
  ones (the first layer under direct encoding; layers after average pooling). Every timestep
  counts (the first layer runs every step). Batch norm is taken as folded into the preceding
  conv at inference and is not counted; nor are residual adds, pooling or neuron updates, nor a
  spiking transformer's attention products of spikes with spikes (no weights: Q K^T V in SSA).
- Energy E = E_MAC x MACs + E_AC x SynOps, with the 45 nm constants of Horowitz (ISSCC 2014):
  fp32 4.6 / 0.9 pJ (default), fp16 1.5 / 0.4 pJ (1.1 + 0.4 and 0.4), int8 0.23 / 0.03 pJ.
- The paper convention beside it: per layer, SOP = input spike rate x dense operations x T, and a
  real-valued input layer dense MACs x T (e.g. Spikformer-style appendices).
- Spikes scaled by a threshold (TrSG's theta * S) count as spikes: in a model whose neurons emit
  them, an input whose non-zero values are all one number c is c times a binary input, and c
  folds into the weights at inference.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from spikingjelly.activation_based import functional
from spikingjelly.activation_based import op_counter as oc
from torch import nn

from ..errors import UsageError
from ..models.static import stock_layers
from ..neuron.node import neurons

PRESETS = {"45nm-fp32": (4.6, 0.9), "45nm-fp16": (1.5, 0.4), "45nm-int8": (0.23, 0.03)}
WEIGHT_OPS = ("convolution", "mm", "addmm", "bmm", "baddbmm")
INPUT_ARG = {"convolution": 0, "mm": 0, "addmm": 1, "bmm": 0, "baddbmm": 1}  # the activations


def scaled_binary(x: torch.Tensor) -> bool:
    """Whether every non-zero value of ``x`` is one and the same number: c times spikes."""
    nonzero = x[x != 0]
    return nonzero.numel() == 0 or bool((nonzero == nonzero.reshape(-1)[0]).all())


def _binarize_input(rule, position: int):
    """A counter rule that first turns a {0, c} activation into {0, 1}."""
    def counted(args, kwargs, out):
        x = args[position]
        if torch.is_tensor(x) and scaled_binary(x):
            args = (*args[:position], (x != 0).to(x.dtype), *args[position + 1:])
        return rule(args, kwargs, out)
    return counted


def _scaled_spikes_count(counter):
    for op in list(counter.rules):
        name = op.name().split("::")[-1].split(".")[0]
        if name in INPUT_ARG:
            counter.rules[op] = _binarize_input(counter.rules[op], INPUT_ARG[name])
    return counter


@dataclass(frozen=True)
class EnergyModel:
    """Picojoules per MAC and per accumulate."""

    e_mac_pj: float = 4.6
    e_ac_pj: float = 0.9
    name: str = "45nm-fp32"

    @classmethod
    def parse(cls, text: str) -> "EnergyModel":
        """A preset name, or ``E_MAC,E_AC`` in pJ."""
        if text in PRESETS:
            return cls(*PRESETS[text], name=text)
        try:
            mac, ac = (float(v) for v in text.split(","))
        except ValueError:
            raise UsageError(f"energy model must be one of {', '.join(PRESETS)} or "
                             f"'E_MAC,E_AC' in pJ; got '{text}'") from None
        if not (math.isfinite(mac) and math.isfinite(ac) and mac > 0 and ac > 0):
            raise UsageError(f"--energy E_MAC,E_AC must be two finite numbers > 0 (pJ); "
                             f"got '{text}'")
        return cls(mac, ac, name=f"custom {mac},{ac} pJ")

    def energy_uj(self, macs: float, synops: float) -> dict[str, float]:
        mac, ac = self.e_mac_pj * macs * 1e-6, self.e_ac_pj * synops * 1e-6
        return {"energy_uj": mac + ac, "energy_mac_uj": mac, "energy_ac_uj": ac}


def _weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Conv1d, nn.Linear))}


def _scope_total(counts: dict, scope: str) -> int:
    return sum(n for op, n in counts.get(scope, {}).items()
               if any(w in str(op) for w in WEIGHT_OPS))


def _is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def _dense_ops_hooks(layers: dict[str, nn.Module], stats: dict[str, dict[str, float]],
                     spikes: Callable[[torch.Tensor], bool]):
    """Record per layer its dense operations per sample and timestep and its input spike rate."""
    def hook(name):
        def record(module, inputs, output):
            x = inputs[0]
            positions = (output.shape[-1] * output.shape[-2] if isinstance(module, nn.Conv2d)
                         else output.shape[-1] if isinstance(module, nn.Conv1d) else 1)
            per_step = module.weight.numel() * positions
            binary = spikes(x)
            stats[name] = {"dense_ops_per_step": float(per_step),
                           "input_rate": float((x != 0).float().mean()) if binary else None}
        return record

    return [m.register_forward_hook(hook(name)) for name, m in layers.items()]


@torch.no_grad()
def count_ops(model: nn.Module, x_seq: torch.Tensor, energy: EnergyModel = EnergyModel()
              ) -> dict[str, Any]:
    """Counts per sample for one eval-mode forward of ``x_seq`` [T, N, ...], per layer and in
    total, with the energy under ``energy`` and under the paper convention."""
    T, N = x_seq.shape[0], x_seq.shape[1]
    layers = _weight_layers(model)
    root = type(model).__name__
    syn, mac = oc.SynOpCounter(), oc.MACCounter()
    scaled = any(n.rule.scaled_output for n in neurons(model))
    if scaled:
        syn, mac = _scaled_spikes_count(syn), _scaled_spikes_count(mac)
    dense: dict[str, dict[str, float]] = {}
    handles = _dense_ops_hooks(layers, dense, scaled_binary if scaled else _is_binary)
    was_training = model.training
    model.eval()
    try:
        with oc.DispatchCounterMode([syn, mac]), stock_layers():  # every timestep counts
            model(x_seq)
    finally:
        for handle in handles:
            handle.remove()
        functional.reset_net(model)
        model.train(was_training)
    syn_counts, mac_counts = syn.get_counts(), mac.get_counts()
    rows = []
    for name in layers:
        scope = f"{root}.{name}"
        d = dense.get(name, {"dense_ops_per_step": 0.0, "input_rate": None})
        rate = d["input_rate"]
        paper_sop = rate * T * d["dense_ops_per_step"] if rate is not None else 0.0
        paper_mac = 0.0 if rate is not None else T * d["dense_ops_per_step"]
        rows.append({"layer": name, "synops": _scope_total(syn_counts, scope) / N,
                     "macs": _scope_total(mac_counts, scope) / N, "input_rate": rate,
                     "paper_sops": paper_sop, "paper_macs": paper_mac})
    synops, macs = sum(r["synops"] for r in rows), sum(r["macs"] for r in rows)
    paper_sops, paper_macs = sum(r["paper_sops"] for r in rows), sum(r["paper_macs"] for r in rows)
    return {"T": T, "per_sample": True, "synops": synops, "macs": macs,
            **energy.energy_uj(macs, synops),
            "energy_model": {"name": energy.name, "e_mac_pj": energy.e_mac_pj,
                             "e_ac_pj": energy.e_ac_pj},
            "paper": {"sops": paper_sops, "macs": paper_macs,
                      "energy_uj": energy.energy_uj(paper_macs, paper_sops)["energy_uj"]},
            "layers": rows}
