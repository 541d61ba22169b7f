"""TrSG + MP-Init, Dspike, LocalZO, SLAYER's surrogate and the TET loss: test vectors from their
papers and official code (docs/methods.md, sections 8-12) and each one's own behaviour."""
import math

import pytest
import torch
from spikingjelly.activation_based import functional
from torch import nn

from sgbench.config import resolve_task
from sgbench.errors import UsageError
from sgbench.measure.fdg import cosine, finite_difference, first_weight_layer, surrogate_gradient
from sgbench.measure.probe import Probe
from sgbench.models import SpikingClassifier, convnet
from sgbench.neuron.node import SpikingNeuron, neurons
from sgbench.neuron.shapes import SHAPES
from sgbench.registry import load_method
from sgbench.train.recipe import TETLoss, make_loss

F64 = torch.float64


def _node(name, T=2, params=None, **neuron):
    cls = load_method(name)
    node = SpikingNeuron(**neuron).double()
    model = nn.Sequential(node)
    (cls(params) if params is not None else cls()).attach(model, T)
    return node


# -- the new shapes ------------------------------------------------------------------------------
@pytest.mark.parametrize("name,p,x,g", [
    ("dspike", (3.0, 1.0), 0.0, 3 / (2 * math.tanh(1.5))),  # b / (2 w tanh(b/2)) at x = 0
    ("dspike", (3.0, 1.0), 0.25, 3 * (1 - math.tanh(0.75) ** 2) / (2 * math.tanh(1.5))),
    ("dspike", (3.0, 1.0), 0.6, 0.0),  # outside the window
    ("exponential", (1.0, 1.0), 0.0, 1.0),  # SLAYER: alpha exp(-beta |x|)
    ("exponential", (2.0, 0.5), -2.0, 2 * math.exp(-1.0)),
])
def test_shape_vectors(name, p, x, g):
    value = SHAPES[name].grad(torch.tensor([x], dtype=F64), *[torch.tensor(v, dtype=F64) for v in p])
    assert float(value) == pytest.approx(g, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("b", [0.5, 3.0, 8.0])
def test_dspike_has_unit_area_and_tends_to_a_rectangle_for_small_b(b):
    x = torch.linspace(-0.5, 0.5, 200001, dtype=F64)
    g = SHAPES["dspike"].grad(x, torch.tensor(b, dtype=F64), torch.tensor(1.0, dtype=F64))
    assert float(torch.trapezoid(g, x)) == pytest.approx(1.0, abs=1e-6)
    if b == 0.5:
        assert float(g.max() / g.min()) < 1.07  # nearly flat: the straight-through estimator


def test_localzo_draws_are_seeded_and_average_to_a_gaussian():
    shape, x = SHAPES["localzo"], torch.linspace(-1.5, 1.5, 7, dtype=F64)
    delta, m = torch.tensor(0.5, dtype=F64), torch.tensor(5.0, dtype=F64)
    one = shape.grad(x, delta, m, torch.tensor(7.0))
    assert torch.equal(one, shape.grad(x, delta, m, torch.tensor(7.0)))
    assert not torch.equal(one, shape.grad(x, delta, m, torch.tensor(8.0)))
    mean = torch.stack([shape.grad(x, delta, m, torch.tensor(float(s))) for s in range(4000)]
                       ).mean(0)  # paper Sec. 4: E = N(x; 0, delta^2)
    gauss = torch.exp(-x**2 / (2 * 0.25)) / (0.5 * math.sqrt(2 * math.pi))
    assert torch.allclose(mean, gauss, atol=0.02)


def test_localzo_draws_anew_each_training_forward_and_resumes_the_same_draws():
    torch.manual_seed(3)
    node = _node("localzo")
    x = torch.randn(2, 50, dtype=F64) + 1.0

    def grad():
        x_ = x.clone().requires_grad_(True)
        node(x_).sum().backward()
        functional.reset_net(node)
        return x_.grad

    state = {k: v.clone() for k, v in node.state_dict().items()}
    first, second = grad(), grad()
    assert not torch.equal(first, second)
    node.load_state_dict(state)
    assert torch.equal(grad(), first)


# -- TrSG + MP-Init (official code: trlif.py) ----------------------------------------------------
def _official_trsg(x, raw_theta, k, steps):
    """The code's firing function and soft reset, autograd throughout: spike = theta *
    round_ste(clamp(v / theta - 1/2, 0, 1)), v <- v - spike; charge v <- k v + x (as sgbench's
    'mul' neuron)."""
    theta = nn.functional.softplus(raw_theta)
    v, out = torch.zeros_like(x[0]), []
    for t in range(steps):
        v = k * v + x[t]
        u = torch.clamp(v / theta - 0.5, 0, 1)
        spike = ((u.round() - u).detach() + u) * theta
        v = v - spike
        out.append(spike)
    return torch.stack(out)


@pytest.mark.parametrize("theta0", [0.5, 1.0, 2.5])
def test_trsg_gradients_equal_the_official_code(theta0):
    cls = load_method("trsg")
    node = _node("trsg", T=3, params=cls.Params(theta0=theta0, mp_init=False), charge="mul",
                 decay=0.4, reset="soft")
    torch.manual_seed(0)
    x = (torch.randn(3, 400, dtype=F64) * theta0 + theta0).requires_grad_(True)
    upstream = torch.randn(3, 400, dtype=F64)
    raw = node.rule.raw_theta
    ours = torch.autograd.grad((node(x) * upstream).sum(), [x, raw])
    ref_raw = raw.detach().clone().requires_grad_(True)
    ref = torch.autograd.grad((_official_trsg(x, ref_raw, 0.4, 3) * upstream).sum(), [x, ref_raw])
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, atol=1e-10), (a, b)
    # the threshold's scale cancels: dOut/dH is 1 inside the window, whatever theta is
    assert float(ours[0].abs().max()) > 0


def _official_plif_trsg(x, w, raw_theta, steps):
    """The code's learnable charge (trlif.py, decay_input, v_reset None): v <- v + (x - v)
    sigmoid(w), then the firing function and soft reset as above; autograd throughout."""
    theta, d = nn.functional.softplus(raw_theta), torch.sigmoid(w)
    v, out = torch.zeros_like(x[0]), []
    for t in range(steps):
        v = v + (x[t] - v) * d
        u = torch.clamp(v / theta - 0.5, 0, 1)
        spike = ((u.round() - u).detach() + u) * theta
        v = v - spike
        out.append(spike)
    return torch.stack(out)


def _paper_node(T, theta0=1.0):
    """TrSG under the paper protocol's neuron: PLIF with decay_input (tau from 2), soft reset."""
    cls = load_method("trsg")
    neuron = {k.removeprefix("neuron."): v for k, v in cls.paper_recipe.items()
              if k.startswith("neuron.")}
    return _node("trsg", T=T, params=cls.Params(theta0=theta0, mp_init=False), **neuron)


def test_trsg_learnable_decay_has_the_codes_gradient_on_a_hand_computed_vector():
    """x = (1.2, 1.6), 1/tau = sigmoid(0) = 0.5, theta = 1, V0 = 0: H1 = 0.6 (no spike, V1 =
    0.6), H2 = 0.6 + (1.6 - 0.6) 0.5 = 1.1 (spike). For L = O1 + O2 both H lie in the window
    |H / theta - 1| <= 1/2, so dL/dH1 = dL/dH2 = 1 (the soft reset after no spike passes
    1 - dO1/dH1 = 0 on), and dL/dw = sigmoid'(0) [(x1 - V0) + (x2 - V1)] = 0.25 * 2.2 = 0.55;
    sgbench's former charge H = k V + 0.5 X gave sigmoid'(w) V1 = 0.15 there."""
    node = _paper_node(T=2)
    x = torch.tensor([[1.2], [1.6]], dtype=F64)
    out = node(x)
    assert out.flatten().tolist() == [0.0, 1.0]
    (grad_w,) = torch.autograd.grad(out.sum(), [node.w])
    assert float(grad_w) == pytest.approx(0.55, abs=1e-12)


@pytest.mark.parametrize("theta0", [0.5, 1.0, 2.5])
def test_trsg_paper_neuron_gradients_equal_the_codes_learnable_charge(theta0):
    node = _paper_node(T=4, theta0=theta0)
    torch.manual_seed(1)
    x = (torch.randn(4, 400, dtype=F64) * theta0 + theta0).requires_grad_(True)
    upstream = torch.randn(4, 400, dtype=F64)
    raw, w = node.rule.raw_theta, node.w
    ours = torch.autograd.grad((node(x) * upstream).sum(), [x, raw, w])
    ref_raw, ref_w = (p.detach().clone().requires_grad_(True) for p in (raw, w))
    ref = torch.autograd.grad((_official_plif_trsg(x, ref_w, ref_raw, 4) * upstream).sum(),
                              [x, ref_raw, ref_w])
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, atol=1e-10), (a, b)


def test_mp_init_official_timing_defers_each_update_to_the_next_training_reset():
    """The code updates mu at the next reset in training mode: an evaluation in between drops
    the pending update (each epoch's last batch), where the default applies it at once."""
    cls = load_method("trsg")
    x = torch.full((2, 8), 3.0, dtype=F64)
    every = _node("trsg", T=2, params=cls.Params(mp_init=True), charge="if", reset="soft")
    official = _node("trsg", T=2, params=cls.Params(mp_init=True, mp_timing="official"),
                     charge="if", reset="soft")
    for node in (every, official):
        node.train()
        node(x)
        functional.reset_net(node)
    assert float(every.rule.running_v) > 0 and float(official.rule.running_v) == 0
    official(x)  # the next training forward applies the first update first
    functional.reset_net(official)
    applied = float(official.rule.running_v)
    assert applied == pytest.approx(float(every.rule.running_v))
    official.eval()
    official(x)  # an evaluation drops the second, still pending, update
    functional.reset_net(official)
    assert float(official.rule.running_v) == applied and not bool(official.rule.pending)


def test_trsg_emits_theta_times_spikes_and_counts_them_as_spikes():
    from sgbench.measure.ops import count_ops

    cls = load_method("trsg")
    model = convnet((1, 8, 8), 3, SpikingNeuron, channels=[4, 4])
    cls(cls.Params(theta0=0.7)).attach(model, 2)
    out = neurons(model)[0](torch.rand(2, 3, 4, 8, 8) * 3)
    values = torch.unique(out.detach())
    assert values.tolist() == pytest.approx([0.0, 0.7])
    functional.reset_net(model)
    ops = count_ops(model, torch.rand(2, 3, 1, 8, 8) * 3)
    assert ops["synops"] > 0  # the second conv and the head see {0, theta}: spikes
    assert ops["layers"][1]["input_rate"] is not None


def test_mp_init_tracks_the_final_potential_of_active_neurons():
    """Official rule: mu <- 0.9 mu + 0.1 mean(V[T] over neurons that fired at least once)."""
    node = _node("trsg", T=2, charge="if", reset="soft")
    x = torch.tensor([[1.5, 0.2, 0.3], [0.0, 0.1, 0.9]], dtype=F64)  # neuron 0 and 2 fire
    node(x)
    # V[T]: neuron 0: 1.5 - 1 = 0.5, then 0.5; neuron 2: 0.3 then 1.2 - 1 = 0.2
    assert float(node.rule.running_v) == pytest.approx(0.1 * (0.5 + 0.2) / 2)
    functional.reset_net(node)
    node.eval()  # evaluation starts from mu and leaves it alone
    h = node.rule.running_v.clone()
    node(torch.zeros(2, 3, dtype=F64))
    assert torch.equal(node.rule.running_v, h)
    assert torch.allclose(node.v, torch.full((3,), float(h), dtype=F64))


# -- Dspike: finite differences and the temperature search -----------------------------------------
def _probe(model, classes=3, n=16, T=2):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(T, n, 1, 6, 6, generator=g) * 2
    y = torch.randint(0, classes, (n,), generator=g)
    return Probe(x, y, nn.CrossEntropyLoss(), lambda m: None, "test")


def test_finite_differences_match_autograd_on_a_smooth_network():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(2), nn.Linear(36, 3)).double()
    model.forward = lambda x, f=model.forward: f(x).mean(0)
    probe = _probe(model)
    probe.x = probe.x.double()
    layer = first_weight_layer(model)
    coords = torch.arange(20)
    fd = finite_difference(model, probe, layer, 1e-4, coords)
    assert cosine(surrogate_gradient(model, probe, layer)[:20], fd) == pytest.approx(1, abs=1e-6)


def test_dspike_moves_its_temperature_towards_the_best_cosine(monkeypatch):
    from sgbench.methods import dspike

    torch.manual_seed(0)
    model = convnet((1, 6, 6), 3, SpikingNeuron, channels=[4, 4])
    method = load_method("dspike")()
    method.attach(model, 2)
    probe = _probe(model)
    layer = first_weight_layer(model)

    def at(b):
        for node in neurons(model):
            node.rule.b.fill_(b)
        return surrogate_gradient(model, probe, layer)

    target = at(3.5)  # pretend the finite differences point where b = 3.5 points
    at(3.0)
    monkeypatch.setattr(dspike, "finite_difference", lambda *a: target.double())
    method.adapt(model, 0, probe)
    assert [float(n.rule.b) for n in neurons(model)] == [3.5, 3.5]


def test_dspike_differences_a_fresh_draw_of_its_fd_weights_each_epoch(monkeypatch):
    from sgbench.methods import dspike

    torch.manual_seed(0)
    model = convnet((1, 6, 6), 3, SpikingNeuron, channels=[8, 4])  # 72 first-layer weights
    probe, layer = _probe(model), first_weight_layer(model)
    seen = []

    def differenced(model, probe, layer, eps, coords):
        seen.append(coords.tolist())
        return torch.ones(len(coords), dtype=torch.float64)

    monkeypatch.setattr(dspike, "finite_difference", differenced)
    for params, epochs in (({}, (0, 1)), ({"fd_weights": 0}, (0,))):
        cls = load_method("dspike")
        method = cls(cls.Params(**params))
        method.attach(model, 2)
        for epoch in epochs:
            method.adapt(model, epoch, probe)
    default_0, default_1, whole = seen
    assert len(default_0) == len(set(default_0)) == 48 and default_0 != default_1
    assert whole == list(range(layer.weight.numel()))


# -- TET ---------------------------------------------------------------------------------------------
def test_tet_loss_is_the_paper_formula():
    torch.manual_seed(0)
    classifier = SpikingClassifier(nn.Linear(5, 3))
    loss = TETLoss(classifier, lam=0.05, phi=1.0, label_smoothing=0.0)
    x, y = torch.randn(4, 8, 5), torch.randint(0, 3, (8,))
    logits = classifier(x)
    steps = classifier.body(x)
    ce = sum(nn.functional.cross_entropy(steps[t], y) for t in range(4)) / 4
    expected = 0.95 * ce + 0.05 * ((steps - 1.0) ** 2).mean()
    assert float(loss(logits, y).detach()) == pytest.approx(float(expected.detach()), rel=1e-6)


def test_tet_settings_exist_only_with_the_tet_loss():
    cfg = resolve_task("digits", overrides=["train.loss=tet", "train.tet_lambda=0.1"])
    assert cfg["train"]["tet_lambda"] == 0.1 and cfg["train"]["tet_phi"] == 1.0
    plain = resolve_task("digits")
    assert "tet_lambda" not in plain["train"]  # other configs (and their hashes) are unchanged
    with pytest.raises(UsageError, match="only with train.loss: tet"):
        resolve_task("digits", overrides=["train.tet_lambda=0.1"])
    model = convnet((1, 8, 8), 10, SpikingNeuron, channels=[4])
    assert isinstance(make_loss(cfg["train"], model), TETLoss) and model.keep_steps


def test_a_plugin_shape_reusing_a_built_in_name_gets_no_kernel():
    from sgbench.neuron.cupy_source import has_kernel
    from sgbench.neuron.shapes import Shape

    mine = Shape("triangle", ("h",), lambda x, h: x * 0 + h, lambda x, h: h * x,
                 lambda h: (-1.0, 1.0))
    assert has_kernel(SHAPES["triangle"]) and not has_kernel(mine)
    assert has_kernel(SHAPES["localzo"])  # its draws: a counter-based generator in the kernel


def test_the_new_methods_are_listed_with_fidelity_and_citation():
    import json

    from typer.testing import CliRunner

    from sgbench.cli import app

    listed = {m["name"]: m for m in json.loads(CliRunner().invoke(app, ["list", "methods",
                                                                       "--json"]).stdout)}
    for name, fidelity in {"trsg": "official-code", "localzo": "official-code",
                           "dspike": "paper", "slayer": "paper"}.items():
        assert listed[name]["fidelity"] == fidelity and listed[name]["citation"]


def test_a_run_trains_with_the_tet_loss(tmp_path):
    import json

    from typer.testing import CliRunner

    from sgbench.cli import app

    result = CliRunner().invoke(app, ["run", "-m", "dspike", "-t", "synthetic", "--epochs", "2",
                                      "-o", "train.loss=tet", "--latency-repeats", "1",
                                      "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["status"] == "ok" and record["task"]["config"]["train"]["tet_lambda"] == 0.05
    assert record["diagnostics"]["snapshots"][-1]["fd"]["weights"] > 0
