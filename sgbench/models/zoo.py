"""How SpikingJelly 2.0.0's model zoo (``spikingjelly.activation_based.model``) gets the
engine's neuron in every spiking position (the builders are in ``zoo_archs.py``).

Each builder makes the zoo's own class with the engine's neuron as ``spiking_neuron``. Passing a
class drops the zoo's per-position constants (Spikformer, SDT and QKFormer fire their attention
LIF at 0.5; MS-ResNet's LIF has tau 4/3, threshold 0.5, no input decay and a detached reset), so
the same class is also built on the meta device with the zoo's own ``LIFNode`` (no memory, no
random numbers) and each position's constants are read there: tau, threshold, reset and
``detach_reset`` / ``decay_input`` (``zoo_neurons: false`` gives every position the task's
``neuron`` section instead). The surrogate is the method's everywhere (MS-ResNet's zoo default,
a rectangle, is a surrogate like any other).

The zoo's models return [N, K] logits averaged over T (Spikformer: [T, N, K]); sgbench needs the
per-timestep logits (TET's loss, the mean over T as everywhere else), so each model's forward is
restated here from its modules, with the head applied at every step (a linear head commutes with
the mean over T). The tests check logits and gradients against the zoo model's own forward.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from spikingjelly.activation_based import base, functional, neuron as sj_neuron
from torch import nn

from ..errors import UserError
from .static import STATIC_OF, as_static

Tensor = torch.Tensor
PositionFactory = Callable[..., nn.Module]  # neuron(**the position's constants)


def position_settings(node: sj_neuron.BaseNode) -> dict[str, Any]:
    """A zoo LIF node's constants in the vocabulary of a task's ``neuron`` section."""
    hard = node.v_reset is not None
    return {"charge": "tau", "tau": float(node.tau), "decay_input": bool(node.decay_input),
            "v_threshold": float(node.v_threshold), "reset": "hard" if hard else "soft",
            "v_reset": float(node.v_reset) if hard else 0.0,
            "detach_reset": bool(node.detach_reset)}


def zoo_positions(build: Callable[[Any], nn.Module]) -> dict[str, dict[str, Any]]:
    """Module name -> the zoo's own constants at that position (``build(spiking_neuron)`` run on
    the meta device with the zoo's default neurons)."""
    with torch.device("meta"):
        reference = build(None)
    return {name: position_settings(m) for name, m in reference.named_modules()
            if isinstance(m, sj_neuron.BaseNode)}


class _Slot(base.MemoryModule):
    """What the zoo is given as ``spiking_neuron`` while building: replaced position by position
    right after (its constructor takes whatever the zoo passes)."""

    def __init__(self, **_: Any):
        super().__init__()


def with_engine_neurons(build: Callable[[Any], nn.Module], neuron: PositionFactory,
                        zoo_neurons: bool = True) -> nn.Module:
    """``build(spiking_neuron)`` with ``neuron(**constants)`` in every spiking position: the
    zoo's constants of that position (``zoo_neurons``), else none (the task's section)."""
    positions = zoo_positions(build)
    model = build(_Slot)
    slots = [name for name, m in model.named_modules() if isinstance(m, _Slot)]
    if sorted(slots) != sorted(positions):
        raise RuntimeError(f"the zoo model's neuron positions differ between builds: "
                           f"{sorted(set(slots) ^ set(positions))[:4]}")
    for name in slots:
        replace_module(model, name, neuron(**(positions[name] if zoo_neurons else {})))
    return model


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the submodule ``name`` (dotted) of ``model`` is."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, new)


def trace_feeders(model: nn.Module, in_shape: tuple[int, ...]) -> None:
    """Set each engine neuron's ``fed_by``: the norm whose output is the neuron's input (a view
    of it) and the weight layer whose output that norm normalises, found by one forward of a
    random sample (T=1). Registration order, enough for sgbench's sequential models, is wrong
    here: Spikformer's attention LIF is registered after the QKV norm but is fed by the
    attention product, MS-ResNet's first LIF of a block by the block's input."""
    from ..neuron.node import SpikingNeuron, neurons

    producers: dict[int, tuple[str, nn.Module]] = {}  # storage address -> the module that made it
    inputs: dict[nn.Module, int] = {}
    alive: list[Tensor] = []  # every tensor seen stays alive: no address is reused in the trace

    def record(name):
        def hook(module, args, output):
            inputs[module] = args[0].untyped_storage().data_ptr()
            producers[output.untyped_storage().data_ptr()] = (name, module)
            alive.extend((args[0], output))
        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in model.named_modules()
               if isinstance(m, (NORMS, WEIGHTS, POOLS, SpikingNeuron))]
    was_training = model.training
    try:
        with torch.no_grad():
            sample = torch.rand(1, 1, *in_shape, generator=torch.Generator().manual_seed(0))
            model.eval()(sample)  # its own generator: the run's random stream is untouched
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
        functional.reset_net(model)
    for node in neurons(model):
        node.fed_by = _feeders(node, producers, inputs)


NORMS = nn.modules.batchnorm._NormBase
WEIGHTS = (nn.Conv1d, nn.Conv2d, nn.Linear)
POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)


def _feeders(node: nn.Module, producers, inputs) -> list[tuple[str, nn.Module]]:
    """The norm and the weight layer in front of ``node`` (pooling passed through), nearest
    first; empty where its input is another neuron's spikes or a sum."""
    chain, source = [], producers.get(inputs.get(node))
    while source is not None and isinstance(source[1], (NORMS, WEIGHTS, POOLS)):
        if not isinstance(source[1], POOLS):
            chain.append(source)
            if isinstance(source[1], WEIGHTS):
                break
        source = producers.get(inputs.get(source[1]))
    return chain


class ZooBody(nn.Module):
    """A zoo model run on [T, N, ...] input, giving per-timestep logits [T, N, K]."""

    def __init__(self, net: nn.Module, steps: Callable[[nn.Module, Tensor], Tensor]):
        super().__init__()
        self.net, self._steps = net, steps

    def forward(self, x_seq: Tensor) -> Tensor:
        return self._steps(self.net, x_seq)


def static_stem(net: nn.Module) -> None:
    """Direct input repeats one image at every step: the convolutions, norms and pools in
    front of the first spiking neuron (in registration order, which is forward order there) run
    once on it (models/static.py), as in sgbench's own models. Any other layer ends the stem."""
    for name, module in list(net.named_modules())[1:]:
        if type(module) in STATIC_OF.values():
            continue  # made static with its container
        static = as_static(module)
        if static is None and (isinstance(module, base.MemoryModule)
                               or not any(module.children())):
            return  # a neuron (any kind), or a layer that is not conv, norm or pool
        if static is not None and static is not module:
            replace_module(net, name, static)


def zoo_model(build: Callable[[Any], nn.Module], neuron: PositionFactory, zoo_neurons: bool,
              steps: Callable[[nn.Module, Tensor], Tensor], in_shape) -> nn.Module:
    """The classifier of ``build``'s zoo model with the engine's neurons (``with_engine_neurons``)
    whose per-timestep logits ``steps`` gives."""
    return zoo_classifier(with_engine_neurons(build, neuron, zoo_neurons), steps, in_shape)


def zoo_classifier(net: nn.Module, steps, in_shape) -> nn.Module:
    from . import SpikingClassifier

    static_stem(net)
    model = SpikingClassifier(ZooBody(net, steps))
    if not any(p.is_meta for p in model.parameters()):
        trace_feeders(model, in_shape)
    return model


def foreign_neurons(model: nn.Module) -> list[str]:
    """Names of the model's spiking neurons that are not the engine's (SpikingJelly nodes, or
    any other stateful module that fires)."""
    from ..neuron.node import SpikingNeuron

    return [name for name, m in model.named_modules()
            if isinstance(m, (sj_neuron.BaseNode, _Slot)) and not isinstance(m, SpikingNeuron)]


def refuse_foreign_neurons(model: nn.Module, arch: str) -> None:
    foreign = foreign_neurons(model)
    if foreign:
        kind = type(model.get_submodule(foreign[0])).__name__
        raise UserError(f"model.arch {arch}: {len(foreign)} spiking neuron(s) are not the "
                        f"engine's (first: {foreign[0]}, {kind}); the method would not drive "
                        f"them, so the run is refused")
