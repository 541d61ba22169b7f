"""The neuron engine: conformance with SpikingJelly, and the analytic BPTT against autograd."""
import itertools

import pytest
import torch
from spikingjelly.activation_based import functional, neuron, surrogate

from sgbench.neuron.capture import GradCapture
from sgbench.neuron.engine import Dynamics
from sgbench.neuron.node import SpikingNeuron
from sgbench.neuron.rules import FixedRule, LayerRule, LearnableRule
from sgbench.neuron.shapes import get_shape


@pytest.mark.parametrize("reset,detach", list(itertools.product(["hard", "soft"], [False, True])))
@pytest.mark.parametrize("sj_surrogate,shape,param", [
    (surrogate.Sigmoid(alpha=4.0), "sigmoid", 4.0), (surrogate.ATan(alpha=2.0), "atan", 2.0)])
def test_matches_spikingjelly_lif(reset, detach, sj_surrogate, shape, param):
    x = (torch.randn(4, 8, 16, 5, 5) * 1.5 + 0.3).requires_grad_(True)
    ref = neuron.LIFNode(tau=2.0, decay_input=True, v_reset=0.0 if reset == "hard" else None,
                         surrogate_function=sj_surrogate, detach_reset=detach, step_mode="m")
    ours = SpikingNeuron(tau=2.0, reset=reset, detach_reset=detach,
                         rule=FixedRule(shape, [param]))
    grad = torch.randn_like(x)
    s_ref = ref(x)
    (g_ref,) = torch.autograd.grad(s_ref, x, grad)
    s_ours = ours(x)
    (g_ours,) = torch.autograd.grad(s_ours, x, grad)
    assert torch.equal(s_ref, s_ours)
    assert s_ours.sum() > 0  # the comparison is not vacuous
    assert torch.allclose(g_ref, g_ours, atol=1e-5, rtol=0)


class _ScheduledThreshold(LayerRule):
    """A learnable threshold per timestep and learnable shape parameters (for gradient checks)."""

    def __init__(self, shape, p, T):
        super().__init__(shape)
        self.theta = torch.nn.Parameter(torch.linspace(0.8, 1.2, T, dtype=torch.float64))
        self.p = torch.nn.Parameter(torch.tensor(p, dtype=torch.float64).repeat(T, 1))

    def sequence(self, neuron, T):
        return self.theta[:T], self.p[:T]


def _autograd_reference(x, v0, k, theta, p, shape, dyn: Dynamics):
    """The same dynamics written as a plain autograd loop; the spike's backward is the shape's
    derivative, and its derivative wrt p that of the primitive (straight-through on values)."""
    v, out, hs = v0, [], []
    for t in range(x.shape[0]):
        h = k * v + dyn.c * x[t] + dyn.b
        hs.append(h)
        u = h - theta[t]
        prim = shape.primitive(u, *p[t].unbind(0))
        s = (u >= 0).to(x.dtype).detach() + prim - prim.detach()
        s_reset = s.detach() if dyn.detach_reset else s
        v = h * (1 - s_reset) + dyn.v_reset * s_reset if dyn.hard_reset else h - theta[t] * s_reset
        out.append(s)
    return torch.stack(out), v, hs


CASES = list(itertools.product(
    ["tau", "mul", "if"], ["hard", "soft"], [False, True],
    [("sigmoid", [4.0]), ("atan", [2.0]), ("superspike", [3.0]), ("rect", [0.4, 0.7, 0.3, 0.7]),
     ("triangle", [0.6, 0.9, 1.2]), ("ramp", [0.6, 0.8, 0.8, 0.5])]))


@pytest.mark.parametrize("charge,reset,detach,shape_p", CASES)
def test_bptt_matches_autograd(charge, reset, detach, shape_p):
    """Input, initial-potential, decay, threshold and shape-parameter gradients in float64, with
    a loss on H too (auxiliary losses); the captured dL/dH reductions match autograd's."""
    name, p = shape_p
    T = 3
    node = SpikingNeuron(charge=charge, reset=reset, detach_reset=detach, v_reset=0.2,
                         decay=0.3, learnable_decay=(charge == "mul"), tau=1.7,
                         rule=_ScheduledThreshold(name, p, T)).double()
    node.keep_h, node.capture = True, GradCapture(keep=True)
    x = (torch.randn(T, 40, dtype=torch.float64) * 0.9 + 0.6).requires_grad_(True)
    v0 = (torch.randn(40, dtype=torch.float64) * 0.3).requires_grad_(True)
    node.v = v0
    upstream, on_h = torch.randn(2, T, 40, dtype=torch.float64)
    leaves = [x, v0, node.rule.theta, node.rule.p] + ([node.w] if node.w is not None else [])
    loss = (node(x) * upstream).sum() + node.v.sum() + (node.h_seq * on_h).sum()
    grads = torch.autograd.grad(loss, leaves)
    k = node.decay_factor()
    s_ref, v_ref, hs = _autograd_reference(x, v0, k, node.rule.theta, node.rule.p,
                                           node.rule.shape, node.dynamics)
    loss_ref = (s_ref * upstream).sum() + v_ref.sum() + (torch.stack(hs) * on_h).sum()
    ref = torch.autograd.grad(loss_ref, leaves, retain_graph=True)
    for ours, theirs in zip(grads, ref):
        assert torch.allclose(ours, theirs, atol=1e-10), (ours, theirs)
    assert all(g.abs().sum() > 0 for g in grads)
    delta = torch.stack(torch.autograd.grad(loss_ref, hs))
    expected = GradCapture.of(delta)
    for stat in ("sgv", "tgc", "cv"):
        assert getattr(node.capture, stat)() == pytest.approx(getattr(expected, stat)(), rel=1e-9)
    assert torch.allclose(node.capture.deltas(node.rule.p.detach()), delta, atol=1e-10)


@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_single_step_mode_equals_multi_step(reset):
    x = torch.randn(5, 3, 7) + 0.5
    multi = SpikingNeuron(reset=reset, rule=LearnableRule("atan", [2.0]))
    single = SpikingNeuron(reset=reset, rule=LearnableRule("atan", [2.0]), step_mode="s")
    xs = x.clone().requires_grad_(True)
    s_multi = multi(xs)
    (g_multi,) = torch.autograd.grad(s_multi.sum(), xs)
    xs2 = x.clone().requires_grad_(True)
    s_single = torch.stack([single(xs2[t]) for t in range(5)])
    (g_single,) = torch.autograd.grad(s_single.sum(), xs2)
    assert torch.equal(s_multi, s_single)
    assert torch.allclose(g_multi, g_single, atol=1e-6)


class _MeanThreshold(LayerRule):
    """A stepwise rule: theta[t] from statistics of H[t] (as DS-ATGO does)."""

    mode = "stepwise"

    def step(self, neuron, t, h):
        return h.detach().mean() + 0.1 * t, torch.tensor([2.0])


def test_stepwise_mode_uses_thresholds_from_h():
    node = SpikingNeuron(rule=_MeanThreshold("atan"))
    node.observe = True
    x = torch.randn(4, 50).requires_grad_(True)
    s = node(x)
    s.sum().backward()
    h = node.stats
    assert torch.allclose(h["theta"], h["h_mean"] + 0.1 * torch.arange(4), atol=1e-6)
    assert x.grad.abs().sum() > 0


def test_reset_net_and_set_step_mode_reach_the_neuron():
    net = torch.nn.Sequential(torch.nn.Identity(), SpikingNeuron(step_mode="s"))
    functional.set_step_mode(net, "m")
    assert net[1].step_mode == "m"
    net(torch.ones(2, 3) * 3)
    assert torch.is_tensor(net[1].v)
    functional.reset_net(net)
    assert net[1].v == 0.0 and net[1].t == 0


def test_observability_reports_per_timestep_and_is_off_by_default():
    node = SpikingNeuron(rule=FixedRule("rect", [0.5, 0.5, 0.5, 0.5]))
    x = torch.randn(3, 1000) + 1.0
    node(x)
    assert node.stats is None
    functional.reset_net(node)
    node.observe = True
    s = node(x)
    stats = node.stats
    assert stats["spike_rate"].shape == (3,)
    assert torch.allclose(stats["spike_rate"], s.mean(1))
    h0 = x[0] / 2  # tau=2, V=0 at t=0
    assert torch.isclose(stats["in_support"][0], ((h0 - 1).abs() <= 0.5).float().mean())
    assert stats["p"].shape == (3, 4) and torch.all(stats["theta"] == 1.0)


def test_half_precision_input_keeps_fp32_state():
    node = SpikingNeuron()
    x = (torch.randn(2, 10) + 1).to(torch.bfloat16)
    s = node(x)
    assert s.dtype == torch.bfloat16 and node.v.dtype == torch.float32


@pytest.mark.parametrize("name", ["rect", "triangle", "ramp", "sigmoid", "atan", "superspike"])
def test_shape_primitive_derivative_is_the_shape(name):
    shape = get_shape(name)
    p = {"rect": [0.4, 0.7, 0.3, 0.7], "triangle": [0.6, 0.9, 1.2], "ramp": [0.6, 0.8, 0.8, 0.5],
         "sigmoid": [4.0], "atan": [2.0], "superspike": [3.0]}[name]
    p = [torch.tensor(v, dtype=torch.float64) for v in p]
    x = torch.linspace(-1.5, 1.5, 301, dtype=torch.float64)
    x = x[(x - 0.0).abs() > 1e-3]  # keep away from kinks
    eps = 1e-6
    numeric = (shape.primitive(x + eps, *p) - shape.primitive(x - eps, *p)) / (2 * eps)
    lo, hi = shape.support(*p)
    edges = torch.tensor([float(lo), float(hi)], dtype=torch.float64)
    away = (x[:, None] - edges[None]).abs().min(1).values > 1e-4
    assert torch.allclose(numeric[away], shape.grad(x, *p)[away], atol=1e-6)


def test_capture_statistics_follow_their_definitions():
    delta = torch.tensor([[1.0, -1.0, 2.0, 0.0], [2.0, -2.0, 4.0, 0.0], [0.0, 1.0, 0.0, -1.0]],
                         dtype=torch.float64)
    capture = GradCapture.of(delta)
    last = delta[-1]
    assert capture.sgv() == pytest.approx(float(last.var(correction=0) / last.abs().mean()))
    assert capture.sgv(scale_free=True) == pytest.approx(
        float(last.std(correction=0) / last.abs().mean()))
    assert capture.tgc_per_step() == pytest.approx([1.0, -2 / 48 ** 0.5])
    assert capture.cv() == pytest.approx(float(delta.std(correction=0) / delta.mean().abs()))
    assert GradCapture.of(delta * 3).sgv() == pytest.approx(3 * capture.sgv())


def test_recomputed_deltas_follow_the_shape_parameters():
    node = SpikingNeuron(rule=FixedRule("rect", [0.5, 0.5, 0.5, 0.5])).double()
    node.capture = GradCapture(keep=True)
    x = (torch.randn(3, 200, dtype=torch.float64) + 1.5).requires_grad_(True)
    node(x).sum().backward()
    p = node.rule.p.expand(3, -1)
    assert torch.allclose(node.capture.deltas(p) * node.dynamics.c, x.grad)
    wider = torch.tensor([1.0, 1.0, 0.5, 0.5], dtype=torch.float64).expand(3, -1)
    assert not torch.allclose(node.capture.deltas(wider), node.capture.deltas(p))


@pytest.mark.parametrize("correction,channels_last", [(0, False), (1, False), (0, True)])
def test_the_fast_var_mean_is_torch_s_with_its_gradient(correction, channels_last):
    """sgbench/neuron/moments.py (PSG's PDA loss, DS-ATGO's thresholds) against torch.var_mean;
    channels-last potentials are read in place, their gradient keeps their layout."""
    from sgbench.neuron.moments import var_mean

    h = torch.randn(6, 4, 3, 5, dtype=torch.float64) * 2 + 1.5
    if channels_last:
        h = h.contiguous(memory_format=torch.channels_last)
    h = h.view(2, 3, 4, 3, 5).requires_grad_(True)
    upstream = torch.tensor([0.7, -1.3], dtype=torch.float64)
    ours = torch.stack(var_mean(h, correction=correction))
    theirs = torch.stack(torch.var_mean(h, correction=correction))
    torch.testing.assert_close(ours, theirs)
    grads = [torch.autograd.grad((out * upstream).sum(), h)[0] for out in (ours, theirs)]
    torch.testing.assert_close(*grads)
    assert grads[0].stride() == h.stride()


def test_storage_order_names_the_dims_from_the_outermost_in_memory():
    from sgbench.api import storage_order

    x = torch.randn(2, 3, 4, 5)
    assert storage_order(x) == [0, 1, 2, 3]
    channels_last = x.contiguous(memory_format=torch.channels_last)
    assert storage_order(channels_last) == [0, 2, 3, 1]
    assert channels_last.permute(storage_order(channels_last)).is_contiguous()
    assert storage_order(x[:, :, ::2]) == [0, 1, 2, 3]  # not dense: as it is (a reader copies)
