"""The method plugin contract (DESIGN section 4).

A method is one class in one file. It declares its citation, kinds, fidelity and a ``Params``
dataclass with the paper's defaults, and gives each neuron layer a ``LayerRule`` (threshold and
surrogate parameters per timestep). Optional hooks: ``on_epoch_start`` (schedules), ``adapt``
(searches on a probe batch), ``on_train_batch_end``, ``aux_loss`` and ``param_groups``.
``paper_recipe`` (every task) and ``paper_training`` (per dataset) make the task overlay applied
under ``--protocol paper``: neuron, norm layer and loss settings belong there, not in the method.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from . import params as params_
from .errors import UsageError
from .neuron.node import SpikingNeuron, preceding
from .neuron.rules import FixedRule, LayerRule
from .neuron.shapes import Shape, get_shape

KINDS = ("fixed", "scheduled", "learnable", "adaptive", "asymmetric", "threshold")
FIDELITIES = ("official-code", "paper", "reconstruction")


@dataclass
class LayerContext:
    """What a method may know about one neuron layer when it builds that layer's rule."""

    index: int  # 0-based, in forward order
    count: int  # number of neuron layers in the model
    neuron: SpikingNeuron
    norm: nn.Module | None  # the normalisation layer feeding the neuron, if any
    T: int  # timesteps of the run

    def gamma_mean(self) -> torch.Tensor | None:
        """Mean of the feeding norm layer's affine weight, detached (None without one)."""
        weight = getattr(self.norm, "weight", None)
        return weight.detach().mean() if weight is not None else None

    def decay(self) -> float:
        """The neuron's decay factor k (H = k V + c X), detached."""
        return self.neuron.decay_value()


class Method:
    """Base class of every surrogate-gradient method."""

    name: ClassVar[str] = ""  # set by the registry: the file stem or entry-point name
    citation: ClassVar[str] = ""
    kinds: ClassVar[tuple[str, ...]] = ()
    fidelity: ClassVar[str] = "paper"
    paper_recipe: ClassVar[dict[str, Any]] = {}  # dotted task keys, for every task
    paper_training: ClassVar[dict[str, dict[str, Any]]] = {}  # dataset -> dotted task keys

    @dataclass
    class Params:
        pass

    def __init__(self, params: Any | None = None):
        self.params = params if params is not None else self.Params()
        params_.validate(type(self), self.params)

    @classmethod
    def param_problems(cls, params: Any) -> list[str]:
        """Rules across parameters (each field's own bounds and choices are declared with
        ``param``): one message per broken rule."""
        return []

    # -- the one thing every method must say --------------------------------------------------
    def layer_rule(self, ctx: LayerContext) -> LayerRule:
        raise UsageError(f"method '{self.name}' defines no layer_rule (subclass FixedSurrogate "
                         f"for a fixed surrogate, or return a LayerRule per layer)")

    # -- optional hooks -----------------------------------------------------------------------
    def on_epoch_start(self, model: nn.Module, epoch: int, epochs: int) -> None:
        """Called before each training epoch (0-based) for schedules."""

    def adapt(self, model: nn.Module, epoch: int, probe: Any) -> None:
        """Called after ``on_epoch_start`` with a ``Probe`` (a fixed training batch that runs
        forward and backward without touching weights or running statistics), for searches.
        Its time is recorded as ``cost.adapt_s``."""

    def extend_to_T(self, model: nn.Module, T: int) -> str:
        """Prepare ``model`` to run at a T it was not trained with; return the policy used.
        Rules that compute theta and p for any T need nothing."""
        return "none needed: the rules give theta and p for any T"

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """Optimizer groups for the method's own parameters: ``{"params": [...], "lr_scale":
        0.001, "weight_decay": 0.0}``; every other parameter keeps the task's settings."""
        return []

    def on_train_batch_end(self, model: nn.Module, step: int) -> None:
        """Called after each optimiser step."""

    def aux_loss(self, model: nn.Module) -> torch.Tensor | None:
        """An auxiliary loss added to the task loss (e.g. potential-distribution regularisers)."""
        return None

    def search_bounds(self) -> dict[str, tuple[float | None, float | None]]:
        """The range a search or clamp keeps each searched surrogate parameter in, by the
        shape's parameter name (None: unbounded on that side). The record keeps what the method
        chose per layer, and `compare` flags a run whose choice sits at a bound."""
        return {}

    # -- engine side --------------------------------------------------------------------------
    def attach(self, model: nn.Module, T: int) -> None:
        """Give every engine neuron of ``model`` this method's rule, in forward order."""
        layers = preceding(model, (nn.modules.batchnorm._NormBase,))
        if not layers:
            raise UsageError("the model has no sgbench spiking neurons to attach a method to")
        for index, (neuron, norm) in enumerate(layers.items()):
            ctx = LayerContext(index, len(layers), neuron, norm[1] if norm else None, T)
            neuron.rule = self.layer_rule(ctx)
            neuron.rule.method_name = self.name

    @classmethod
    def paper_overlay(cls, dataset: str) -> dict[str, Any]:
        """The ``--protocol paper`` overlay for a task on ``dataset``."""
        return {**cls.paper_recipe, **cls.paper_training.get(dataset, {})}

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"name": cls.name, "kinds": list(cls.kinds), "fidelity": cls.fidelity,
                "citation": cls.citation}


class FixedSurrogate(Method):
    """A fixed surrogate shape with the neuron's own threshold: the classic baselines. ``shape``
    is a built-in shape's name or a plugin's own ``Shape``."""

    shape: ClassVar[str | Shape] = ""
    kinds = ("fixed",)

    @classmethod
    def surrogate(cls) -> Shape:
        return cls.shape if isinstance(cls.shape, Shape) else get_shape(cls.shape)

    def shape_params(self) -> list[float]:
        """The shape's parameter vector; by default the Params fields named like the shape's."""
        return [float(getattr(self.params, name)) for name in self.surrogate().params]

    def layer_rule(self, ctx: LayerContext) -> LayerRule:
        return FixedRule(self.surrogate(), self.shape_params())
