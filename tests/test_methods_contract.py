"""One contract, run over every registered method."""
import pytest
import torch
from spikingjelly.activation_based import functional

from sgbench.models import convnet
from sgbench.neuron.node import SpikingNeuron, neurons
from sgbench.neuron.rules import LayerRule
from sgbench.registry import all_methods, method_names

METHODS = method_names()


def _model(method_cls, seed=0):
    torch.manual_seed(seed)
    model = convnet((1, 6, 6), 3, lambda: SpikingNeuron(), channels=[4, 4]).double()
    method = method_cls()
    method.attach(model, T=3)
    return model.double()


@pytest.mark.parametrize("name", METHODS)
def test_describes_itself(name):
    cls = next(c for c in all_methods() if c.name == name)
    info = cls.describe()
    assert info["citation"] and info["kinds"] and info["fidelity"] in (
        "official-code", "paper", "reconstruction")


@pytest.mark.parametrize("name", METHODS)
def test_forward_is_exact_heaviside(name):
    cls = next(c for c in all_methods() if c.name == name)
    model = _model(cls)
    for node in neurons(model):
        node.observe = True
    x = torch.randn(3, 5, 1, 6, 6, dtype=torch.float64)
    model(x)
    first = neurons(model)[0]
    # Recompute the first layer's potentials by hand and compare the spikes exactly.
    current = model.body[1](model.body[0](x))
    v, k, dyn = torch.zeros_like(current[0]), first.decay_factor(), first.dynamics
    theta = first.stats["theta"].double()
    for t in range(3):
        h = k * v + dyn.c * current[t] + dyn.b
        s = (h >= theta[t]).double()
        assert torch.isclose(s.mean(), first.stats["spike_rate"][t].double(), atol=1e-7)
        v = h * (1 - s) + dyn.v_reset * s if dyn.hard_reset else h - theta[t] * s


def _first_step_rule(node, h):
    """theta and p of timestep 0 for the potential h (what the engine used from rest)."""
    if node.rule.mode == "sequence":
        theta, p = node.rule.sequence(node, 1)
        return theta[0].double(), p[0].double()
    return node.rule.step(node, 0, h)


@pytest.mark.parametrize("name", METHODS)
def test_backward_is_the_derivative_of_the_primitive(name):
    """One step from rest: dS/dX = c * F'(H - theta), checked by finite differences in float64."""
    cls = next(c for c in all_methods() if c.name == name)
    model = _model(cls)
    node = neurons(model)[0]
    x = (torch.rand(1, 2000, dtype=torch.float64) * 6 - 2).requires_grad_(True)
    (grad,) = torch.autograd.grad(node(x).sum(), x)
    h = node.dynamics.c * x.detach()[0]
    theta, p = _first_step_rule(node, h)
    u = h - theta
    prim = lambda z: node.rule.shape.primitive(z, *p.double().unbind(0))  # noqa: E731
    eps = 1e-7
    numeric = node.dynamics.c * (prim(u + eps) - prim(u - eps)) / (2 * eps)
    lo, hi = node.rule.shape.support(*p.detach().unbind(0))
    smooth = torch.ones_like(u, dtype=torch.bool)
    for edge in (float(lo), 0.0, float(hi)):
        smooth &= (u - edge).abs() > 1e-5
    assert smooth.sum() > 1000
    assert torch.allclose(grad[0][smooth], numeric[smooth], atol=1e-6)
    assert grad.abs().sum() > 0


@pytest.mark.parametrize("name", METHODS)
def test_state_dict_round_trip(name):
    cls = next(c for c in all_methods() if c.name == name)
    trained, fresh = _model(cls, seed=0), _model(cls, seed=1)
    x = torch.randn(2, 4, 1, 6, 6, dtype=torch.float64)
    fresh.load_state_dict(trained.state_dict())
    trained.eval(), fresh.eval()
    assert torch.equal(trained(x), fresh(x))
    for module in trained.modules():
        if isinstance(module, LayerRule):  # a rule's tensors must be buffers or parameters
            assert not [a for a, v in vars(module).items() if torch.is_tensor(v)]


@pytest.mark.parametrize("name", METHODS)
def test_every_learnable_parameter_receives_a_gradient(name):
    cls = next(c for c in all_methods() if c.name == name)
    model = _model(cls)
    x = torch.randn(2, 8, 1, 6, 6, dtype=torch.float64) * 2 + 1
    model(x).pow(2).sum().backward()
    functional.reset_net(model)
    for pname, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, pname
