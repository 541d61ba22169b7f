"""The five literature methods: test vectors from their papers and code (docs/methods.md) and
each method's own behaviour."""
import math

import pytest
import torch
from spikingjelly.activation_based import functional, layer
from torch import nn

from sgbench.config import DEFAULTS, deep_merge, nest, resolve_task, validate
from sgbench.measure.probe import Probe
from sgbench.models import SpikingClassifier, convnet
from sgbench.neuron.node import SpikingNeuron, neurons
from sgbench.neuron.shapes import coverage
from sgbench.registry import load_method
from sgbench.train import make_optimizer

LITERATURE = ["mpd_agl", "ds_atgo", "adali", "a2sg", "st_asg", "psg_pda"]


def _attached(name, T=2, params=None, **neuron_kwargs):
    """A one-layer [BN -> neuron] network with the method attached."""
    cls = load_method(name)
    node = SpikingNeuron(**neuron_kwargs)
    model = nn.Sequential(layer.BatchNorm2d(1, step_mode="m"), node).double()
    method = cls(params) if params is not None else cls()
    method.attach(model, T)
    return method, model, node


def _gaussian(std, n=1_000_000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g, dtype=torch.float64) * std


# -- DS-ATGO (docs/methods.md, section 4) ----------------------------------------------------------
@pytest.mark.parametrize("sigma,kappa", [(0.0, 0.238406), (0.5, 0.537883), (1.0, 1.0),
                                         (2.0, 1.761594)])
def test_ds_atgo_width_vectors(sigma, kappa):
    _, _, node = _attached("ds_atgo")
    z = _gaussian(1.0, n=1000)
    h = (z - z.mean()) / z.std() * sigma if sigma else torch.zeros(1000, dtype=torch.float64)
    theta, p = node.rule.step(node, 0, h)
    assert float(p[0] + p[1]) == pytest.approx(kappa, abs=1e-6)  # left + right = kappa
    assert float(theta) == pytest.approx(sigma, abs=1e-9)  # mean 0, so theta = std


@pytest.mark.parametrize("std,fixed,adaptive", [(0.5, 47.72, 26.00), (1.0, 24.17, 24.17),
                                                (2.0, 12.10, 21.30)])
def test_ds_atgo_fig5_proportions_by_the_engines_coverage(std, fixed, adaptive):
    """U ~ N(0, std^2), theta = mu + sigma: coverage with kappa = 1 and with DS-ATGO's kappa."""
    _, _, node = _attached("ds_atgo", T=1, charge="if")
    node.observe = True
    u = _gaussian(std)[None]  # from rest, H[0] = X[0] under the IF charge
    node(u)
    theta = node.stats["theta"][0]
    assert 100 * float(node.stats["in_support"][0]) == pytest.approx(adaptive, abs=0.2)
    assert 100 * float(coverage(u, theta, -0.5, 0.5)) == pytest.approx(fixed, abs=0.2)


def test_ds_atgo_eval_after_a_state_dict_round_trip_is_identical():
    torch.manual_seed(0)
    trained, fresh = (convnet((1, 6, 6), 3, SpikingNeuron, channels=[4, 4]).double()
                      for _ in range(2))
    cls = load_method("ds_atgo")
    cls().attach(trained, 3), cls().attach(fresh, 3)
    for _ in range(3):  # training batches move the running thresholds
        trained(torch.randn(3, 8, 1, 6, 6, dtype=torch.float64) + 0.5)
        functional.reset_net(trained)
    running = neurons(trained)[0].rule.running_theta
    assert not torch.allclose(running, torch.ones_like(running))
    fresh.load_state_dict(trained.state_dict())
    trained.eval(), fresh.eval()
    x = torch.randn(3, 5, 1, 6, 6, dtype=torch.float64)
    out = trained(x)
    functional.reset_net(trained)
    assert torch.equal(out, fresh(x))
    functional.reset_net(trained)  # eval thresholds do not depend on the rest of the batch
    assert torch.equal(trained(x[:, :2]), out[:2])


@pytest.mark.parametrize("f_c,paper_kappa", [(1.0, 1.604368), (0.8, 1.345214)])
def test_ds_atgo_paper_variant_uses_the_threshold_f_c_mean_plus_std(f_c, paper_kappa):
    """Eq. 7 with Delta V_th = f_c (mean + std): H with mean 0.7 and std 1 gives
    kappa = 1 + tanh(f_c * 1.7 - 1); the code's variant uses the std alone (kappa = 1)."""
    cls = load_method("ds_atgo")
    _, _, official = _attached("ds_atgo", params=cls.Params(f_c=f_c))
    _, _, paper = _attached("ds_atgo", params=cls.Params(f_c=f_c, variant="paper"))
    z = _gaussian(1.0, n=1000)
    h = (z - z.mean()) / z.std() + 0.7
    assert float(official.rule.step(official, 0, h)[1][:2].sum()) == pytest.approx(1.0)
    theta, p = paper.rule.step(paper, 0, h)
    assert float(theta) == pytest.approx(f_c * 1.7)
    assert float(p[:2].sum()) == pytest.approx(paper_kappa, abs=1e-6)


# -- MPD-AGL (docs/methods.md, section 3) ----------------------------------------------------------
@pytest.mark.parametrize("gamma,k,expected", [(1.0, 0.2, [1.0, 1.019804, 1.019804]),
                                              (1.0, 0.5, [1.0, 1.118034, 1.118034]),
                                              (2.0, 0.2, [2.0, 2.039608, 2.039608])])
def test_mpd_agl_width_vectors(gamma, k, expected):
    _, model, node = _attached("mpd_agl", T=3, charge="mul", decay=k, learnable_decay=True,
                               v_threshold=0.5)
    nn.init.constant_(model[0].weight, gamma)
    theta, p = node.rule.sequence(node, 3)
    assert (p[:, 0] + p[:, 1]).tolist() == pytest.approx(expected, abs=1e-6)
    assert theta.tolist() == [0.5] * 3


def test_mpd_agl_coverage_at_init_and_no_gradient_for_negative_gamma():
    _, model, node = _attached("mpd_agl", T=1, charge="mul", decay=0.2, v_threshold=0.5)
    node.observe = True
    u = _gaussian(0.5)[None].requires_grad_(True)  # U(1) ~ N(0, 0.5^2), interval [0, 1]
    node(u)
    assert 100 * float(node.stats["in_support"][0]) == pytest.approx(47.72, abs=0.2)
    functional.reset_net(node)
    nn.init.constant_(model[0].weight, -1.0)
    (grad,) = torch.autograd.grad(node(u).sum(), u)
    assert grad.abs().sum() == 0


# -- AdaLi (docs/methods.md, section 5) ------------------------------------------------------------
@pytest.mark.parametrize("E,values", [
    (500, {1: 1.5, 2: 1.254, 10: 0.826, 100: 0.455, 500: 0.300}),
    (1000, {1: 1.5, 2: 1.276, 10: 0.877, 100: 0.513, 500: 0.353, 1000: 0.300})])
def test_adali_log_schedule_values(E, values):
    from sgbench.methods.adali import scheduled_width
    for e, width in values.items():
        assert scheduled_width("log", e, E, 1.5, 0.3) == pytest.approx(width, abs=5e-4)


def test_adali_linear_sqrt_schedules_and_official_lag():
    from sgbench.methods.adali import scheduled_width, trained_epoch_width
    assert scheduled_width("linear", 500, 500, 1.5, 0.3) == pytest.approx(0.3)
    assert scheduled_width("sqrt", 1000, 1000, 1.5, 0.3) == pytest.approx(0.337, abs=5e-4)
    assert scheduled_width("sqrt", 500, 500, 1.5, 0.3) == pytest.approx(0.353, abs=5e-4)
    official = [trained_epoch_width("log", "official", e, 500, 1.5, 0.3) for e in range(4)]
    paper = [trained_epoch_width("log", "paper", e, 500, 1.5, 0.3) for e in range(4)]
    assert official[0] == official[1] == paper[0] == 1.5
    assert official[2:] == paper[1:3]


def test_adali_on_epoch_start_sets_every_layers_widths():
    cls = load_method("adali")
    method, model, node = _attached("adali", T=2)
    method.on_epoch_start(model, 99, 500)
    theta, p = node.rule.sequence(node, 2)
    assert p[0].tolist() == pytest.approx([0.455, 0.455, 0.5, 0.5], abs=5e-4)
    with pytest.raises(Exception, match="schedule"):
        cls(cls.Params(schedule="cubic"))


# -- A2SG / ST-ASG (docs/methods.md, section 6) ----------------------------------------------------
def _probe_setup(name, **params):
    torch.manual_seed(0)
    cls = load_method(name)
    method = cls(cls.Params(**params))
    model = convnet((1, 6, 6), 3, lambda: SpikingNeuron(), channels=[4, 4])
    method.attach(model, 3)
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(1, 6, 6, generator=g) + 0.3, i % 3) for i in range(32)]
    probe = Probe.from_dataset(data, 16, 3, "direct", nn.CrossEntropyLoss(), method.aux_loss,
                               torch.device("cpu"))
    return method, model, probe


@pytest.mark.parametrize("name", ["a2sg", "st_asg"])
def test_a2sg_search_changes_beta_and_leaves_the_weights_untouched(name):
    method, model, probe = _probe_setup(name, n_eval=6, n_obs=3)
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.endswith("rule.beta")}
    method.adapt(model, 0, probe)
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert all(p.grad is None for p in model.parameters())
    betas = torch.stack([n.rule.beta for n in neurons(model)])
    assert not torch.allclose(betas, torch.full_like(betas, 0.5))
    q = method.params
    assert (q.beta_min, q.beta_max) == (0.25, 1.0)
    assert ((betas >= q.beta_min) & (betas <= q.beta_max)).all()


def test_a_search_starts_from_the_incumbent_and_never_ends_worse():
    from sgbench.search import bayes_minimize

    def objective(x):  # a bumpy curve whose random starts (seed 0) all miss the incumbent's dip
        return math.sin(9 * x) + (x - 0.31) ** 2 + (0 if abs(x - 0.31) > 0.01 else -3)

    found = bayes_minimize(objective, 0.0, 1.0, n_obs=3, n_eval=6, seed=0, start=[0.31])
    assert found.xs[0] == 0.31 and found.y <= objective(0.31) and found.x == 0.31
    without = bayes_minimize(objective, 0.0, 1.0, n_obs=3, n_eval=6, seed=0)
    assert without.y > objective(0.31)


@pytest.mark.parametrize("h,beta,edges,area", [(1.0, 1.0, (0.5, 1.5), 2.0),
                                               (0.0, 1.0, (0.0, 1.0), 1.0),
                                               (1.0, 0.25, (0.5, 1.5), 0.5)])
def test_a2sg_bias_h_is_a_constant_unless_tied_to_the_width(h, beta, edges, area):
    """g = x / (2 beta) + h on [-beta, beta]: from h - 1/2 to h + 1/2 at any width; h = 0 ties
    it to the width, h = 1/(2 beta), a unit area."""
    from sgbench.neuron.shapes import get_shape

    cls = load_method("a2sg")
    p = cls(cls.Params(h=h)).shape_params(torch.tensor([beta], dtype=torch.float64))[0]
    ramp = get_shape("ramp")
    g = ramp.grad(torch.tensor([-beta, beta], dtype=torch.float64), *p.unbind(0))
    assert g.tolist() == pytest.approx(list(edges))
    assert float(ramp.primitive(torch.tensor(beta, dtype=torch.float64), *p.unbind(0))) == \
        pytest.approx(area)


def test_a2sg_no_search_and_update_interval_keep_beta():
    method, model, probe = _probe_setup("a2sg", search=False)
    method.adapt(model, 0, probe)
    method, model2, probe = _probe_setup("a2sg", i_update=2, n_eval=4, n_obs=2)
    method.adapt(model2, 1, probe)
    for m in (model, model2):
        assert all(n.rule.beta.tolist() == [0.5, 0.5] for n in neurons(m))


@pytest.mark.parametrize("preset,edges", [("as-summarised", (0.5, 1.5)),
                                          ("ramp-unit-area", (0.0, 2.0))])
def test_a2sg_presets_are_unit_area_ramps(preset, edges):
    cls = load_method("a2sg")
    method = cls(cls.Params(preset=preset))
    p = method.shape_params(torch.tensor([0.5], dtype=torch.float64))[0]
    shape = load_method("a2sg").shape
    from sgbench.neuron.shapes import get_shape
    ramp = get_shape(shape)
    g = ramp.grad(torch.tensor([-0.5, 0.5], dtype=torch.float64), *p.unbind(0))
    assert g.tolist() == pytest.approx(list(edges))
    area = ramp.primitive(torch.tensor(0.5, dtype=torch.float64), *p.unbind(0))
    assert float(area) == pytest.approx(1.0)


# -- PSG + PDA (docs/methods.md, section 7) --------------------------------------------------------
def test_psg_widths_receive_gradients_and_stay_in_bounds():
    torch.manual_seed(0)
    cls = load_method("psg_pda")
    method = cls()
    model = convnet((1, 6, 6), 3, lambda: SpikingNeuron(), channels=[4, 4])
    method.attach(model, 2)
    model.train()
    optimizer = make_optimizer(model, {**DEFAULTS["train"], "lr": 1.0, "weight_decay": 0.5},
                               method)
    widths = [n.rule.width for n in neurons(model)]
    group = next(g for g in optimizer.param_groups if g["params"][0] is widths[0])
    assert group["lr"] == pytest.approx(1e-3) and group["weight_decay"] == 0.0
    loss = model(torch.randn(2, 8, 1, 6, 6) + 0.5).square().sum() + method.aux_loss(model)
    loss.backward()
    assert all(w.grad is not None and w.grad.abs() > 0 for w in widths)
    with torch.no_grad():
        widths[0].fill_(50.0), widths[1].fill_(-3.0)
    method.on_train_batch_end(model, 0)
    assert [float(w.detach()) for w in widths] == pytest.approx([2.0, 0.05])


def test_pda_is_the_symmetric_kl_to_the_target_and_reaches_the_weights():
    from sgbench.methods.psg_pda import symmetric_kl
    assert float(symmetric_kl(torch.tensor(0.5), torch.tensor(0.25), 0.5, 0.25)) == 0.0
    def kl(m1, v1, m2, v2):  # KL(N(m1, v1) || N(m2, v2))
        return 0.5 * (math.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1)

    expected = (kl(0.1, 0.4, 0.5, 0.25) + kl(0.5, 0.25, 0.1, 0.4)) / 2
    assert float(symmetric_kl(torch.tensor(0.1), torch.tensor(0.4), 0.5, 0.25)) == \
        pytest.approx(expected)
    cls = load_method("psg_pda")
    model = convnet((1, 6, 6), 3, lambda: SpikingNeuron(), channels=[4])
    method = cls()
    method.attach(model, 2)
    model(torch.randn(2, 4, 1, 6, 6))
    aux = method.aux_loss(model)
    aux.backward()
    assert aux > 0 and model.body[0].weight.grad.abs().sum() > 0
    off = cls(cls.Params(pda=0.0))
    off.attach(model, 2)
    functional.reset_net(model)
    model(torch.randn(2, 4, 1, 6, 6))
    assert off.aux_loss(model) is None


# -- every method: paper overlays are valid task keys ----------------------------------------------
@pytest.mark.parametrize("name", LITERATURE)
def test_paper_overlays_are_valid_for_every_dataset_they_name(name):
    cls = load_method(name)
    base = resolve_task("digits")
    for dataset in ["digits", *cls.paper_training]:
        validate(deep_merge(base, nest(cls.paper_overlay(dataset))), f"{name} on {dataset}")
    config = resolve_task("digits", protocol="paper", paper_overlay=cls.paper_overlay)
    for key, value in cls.paper_recipe.items():
        node = config
        for part in key.split("."):
            node = node[part]
        assert node == value, key


def test_digits_deep_is_a_plain_network_with_twelve_spiking_layers():
    from sgbench.data import build_data
    from sgbench.models import build_model
    config = resolve_task("digits_deep")
    data = build_data(config["data"])
    model = build_model(config["model"], config["neuron"], data.input_shape, data.num_classes)
    assert isinstance(model, SpikingClassifier) and isinstance(model.body, nn.Sequential)
    assert len(neurons(model)) >= 12 and config["T"] == 2
