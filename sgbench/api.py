"""The public plugin API: the one sgbench module a method imports (built-in methods too).

A method is a ``Method`` subclass with a citation, kinds, a fidelity level and a ``Params``
dataclass (fields declared with ``param`` carry their allowed values); ``layer_rule`` gives each
spiking layer a ``LayerRule``. A fixed surrogate subclasses ``FixedSurrogate`` and names a
built-in shape or brings its own ``Shape``. See the README ("Add a method") and
``docs/plugin-example/``; ``sgbench check-method`` runs the contract check. Searches get a
probe batch (``adapt``: a ``Probe``; its ``run`` gives a ``ProbePass``) and the tools to score a
surrogate on it: ``Probe.potentials`` (H per layer), ``bayes_minimize``, ``GradCapture`` (SGV,
TGC) and finite-difference gradients (``finite_difference``, ``cosine``). docs/api.md describes
every hook, the rules and the probe with their shapes and types.
"""
from .errors import UsageError, UserError
from .measure.fdg import (coordinates, cosine, finite_difference, first_weight_layer,
                          surrogate_gradient)
from .measure.probe import Probe, ProbePass
from .method import FIDELITIES, KINDS, FixedSurrogate, LayerContext, Method
from .neuron.capture import GradCapture
from .neuron.moments import std_mean, var_mean
from .neuron.node import SpikingNeuron, neurons
from .neuron.numba_backend import storage_order
from .neuron.rules import FixedRule, LayerRule, LearnableRule
from .neuron.shapes import SHAPES, Shape, get_shape
from .params import param
from .recipes import cross_entropy, iterative_lif, sgd_cosine, tdbn
from .search import SearchResult, bayes_minimize

__all__ = [
    "FIDELITIES", "KINDS", "SHAPES", "FixedRule", "FixedSurrogate", "GradCapture",
    "LayerContext", "LayerRule", "LearnableRule", "Method", "Probe", "ProbePass",
    "SearchResult", "Shape",
    "SpikingNeuron", "UsageError", "UserError", "bayes_minimize", "coordinates", "cosine",
    "cross_entropy", "finite_difference", "first_weight_layer", "get_shape", "iterative_lif",
    "neurons", "param", "sgd_cosine", "std_mean", "storage_order", "surrogate_gradient", "tdbn",
    "var_mean",
]
