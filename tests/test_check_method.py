"""`sgbench check-method` fails on each way a plugin can break the contract; declared parameters
are checked before any training; a failing plugin is named by file and line."""
import json
import textwrap

import pytest
from typer.testing import CliRunner

from sgbench.cli import app

runner = CliRunner()
SHAPE_PLUGIN = textwrap.dedent('''
    from dataclasses import dataclass
    import torch
    from sgbench.api import FixedSurrogate, Shape, param

    def grad(x, beta):
        {grad}

    def primitive(x, beta):
        return 0.5 * (torch.tanh(beta * x) + 1)

    def support(beta):
        {support}

    class Tanh(FixedSurrogate):
        citation = "test"
        kinds = ("fixed",)
        fidelity = "paper"
        shape = Shape("tanh_sg", ("beta",), grad, primitive, support)

        @dataclass
        class Params:
            beta: float = param(2.0, gt=0)
''')
GOOD_GRAD = "return 0.5 * beta * (1 - torch.tanh(beta * x) ** 2)"
UNBOUNDED = "return float('-inf'), float('inf')"


def _plugin(tmp_path, grad=GOOD_GRAD, support=UNBOUNDED, name="tanh_sg_plugin"):
    path = tmp_path / f"{name}.py"
    path.write_text(SHAPE_PLUGIN.format(grad=grad, support=support))
    return path


def _check(path):
    result = runner.invoke(app, ["check-method", str(path), "--json"])
    return result, (json.loads(result.stdout) if result.stdout.strip() else None)


def test_a_correct_plugin_with_its_own_shape_passes(tmp_path):
    result, report = _check(_plugin(tmp_path))
    assert result.exit_code == 0, result.output
    assert all(c["ok"] for c in report["checks"]) and report["origin"]["kind"] == "file"


@pytest.mark.parametrize("grad,support,failing,message", [
    ("x.mul_(beta); return 0.5 * beta * (1 - torch.tanh(x) ** 2)", UNBOUNDED,
     {"surrogate"}, "in place"),
    ("return 0.5 * beta * (1 - torch.tanh(beta * x) ** 2) - 0.01", UNBOUNDED,
     {"surrogate"}, "negative surrogate"),
    (GOOD_GRAD, "return -0.5, 0.5", {"surrogate"}, "outside its declared support"),
    ("return 0.5 * beta * (1 - torch.tanh(beta * x) ** 2) + torch.exp(x.abs()) * 0",
     UNBOUNDED, {"surrogate", "extreme and half-precision input"}, "non-finite"),
])
def test_a_broken_plugin_fails_the_check(tmp_path, grad, support, failing, message):
    result, report = _check(_plugin(tmp_path, grad, support))
    assert result.exit_code == 1 and "Traceback" not in result.output
    failed = {c["name"] for c in report["checks"] if not c["ok"]}
    assert failing <= failed, report["checks"]
    assert any(message in c["detail"] for c in report["checks"] if not c["ok"])


@pytest.mark.parametrize("param,field", [
    ("width=-1", "width=-1.0 must be > 0"), ("width=.nan", "must be a finite number"),
    ("width=0", "width=0.0 must be > 0")])
def test_out_of_range_parameters_exit_2_before_training(tmp_path, param, field):
    result = runner.invoke(app, ["run", "--method", "rect", "--task", "synthetic", "--param",
                                 param, "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2 and field in result.output and "rect" in result.output
    assert not (tmp_path / "runs").exists()


def test_a_bad_choice_and_a_cross_field_rule_exit_2(tmp_path):
    bad = runner.invoke(app, ["run", "-m", "adali", "-t", "synthetic", "--param",
                              "schedule=cubic", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "one of log, linear, sqrt" in bad.output
    cross = runner.invoke(app, ["run", "-m", "a2sg", "-t", "synthetic", "--param",
                                "beta0=3", "--out", str(tmp_path)])
    assert cross.exit_code == 2 and "beta_min <= beta0 <= beta_max" in cross.output


def test_a_sweep_with_a_bad_parameter_stops_before_any_job(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps({"name": "s", "methods": ["rect"], "tasks": ["synthetic"],
                                "params": {"rect": {"width": [1.0, -2.0]}}}))
    result = runner.invoke(app, ["sweep", str(spec), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "width=-2.0 must be > 0" in result.output
    assert not (tmp_path / "out").exists()


def test_a_rule_giving_nan_or_a_wrong_shape_names_the_method(tmp_path):
    body = textwrap.dedent('''
        import torch
        from dataclasses import dataclass
        from sgbench.api import LayerRule, Method

        class Rule(LayerRule):
            def sequence(self, neuron, T):
                return torch.full((T,), {theta}), torch.ones({p_shape})

        class Odd(Method):
            citation = "test"
            kinds = ("fixed",)
            fidelity = "paper"

            def layer_rule(self, ctx):
                return Rule("sigmoid")
    ''')
    for theta, p_shape, message in (("float('nan')", "T, 1", "non-finite theta"),
                                    ("1.0", "T, 3", "p of shape")):
        path = tmp_path / "odd.py"
        path.write_text(body.format(theta=theta, p_shape=p_shape))
        result = runner.invoke(app, ["run", "-m", str(path), "-t", "synthetic", "--out",
                                     str(tmp_path / "runs")])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert "method 'odd'" in result.output and message in result.output


def test_a_plugin_bug_names_its_file_and_line_and_debug_shows_the_traceback(tmp_path):
    import fixtures

    path = fixtures.method_file(tmp_path, "buggy", """
        def aux_loss(self, model):
            return undefined_name * 2
    """)
    out = tmp_path / "runs"
    plain = runner.invoke(app, ["run", "-m", str(path), "-t", "synthetic", "--out", str(out)])
    assert plain.exit_code == 1 and "NameError" in plain.output
    assert f"{path}:" in plain.output and "in aux_loss" in plain.output
    assert "Traceback" not in plain.output
    record = json.loads(next(out.glob("*.json")).read_text())
    assert record["status"] == "failed" and "undefined_name" in record["error_traceback"]
    debug = runner.invoke(app, ["--debug", "run", "-m", str(path), "-t", "synthetic", "--out",
                                str(out)])
    assert debug.exit_code == 1 and "Traceback" in debug.output and "aux_loss" in debug.output


# -- what breaks adaptive methods ------------------------------------------------------------
GAUSS_PLUGIN = textwrap.dedent('''
    import math
    from dataclasses import dataclass
    import torch
    from sgbench.api import FixedSurrogate, Shape, param

    def grad(x, sigma):
        g = torch.exp(-x * x / (2 * sigma * sigma)) / (sigma * math.sqrt(2 * math.pi))
        return g - 0.5 * torch.relu(sigma - 1.5) * g  # negative only where sigma > 3.5

    def primitive(x, sigma):
        return (1 - 0.5 * max(float(sigma) - 1.5, 0.0)) * 0.5 * (
            1 + torch.erf(x / (sigma * math.sqrt(2))))

    def support(sigma):
        return float("-inf"), float("inf")

    class Gauss(FixedSurrogate):
        citation = "test"
        shape = Shape("gauss_neg", ("sigma",), grad, primitive, support)

        @dataclass
        class Params:
            sigma: float = param(0.5, gt=0, le={le})
''')


def test_param_checks_the_surrogate_where_it_is_negative(tmp_path):
    path = tmp_path / "gauss_neg.py"
    path.write_text(GAUSS_PLUGIN.format(le=10))
    default = runner.invoke(app, ["check-method", str(path), "--json"])
    failed = {c["name"] for c in json.loads(default.stdout)["checks"] if not c["ok"]}
    assert failed == {"parameter bounds"}  # sigma = 10, its declared bound, is negative
    at_four = runner.invoke(app, ["check-method", str(path), "--param", "sigma=4", "--json"])
    report = json.loads(at_four.stdout)
    assert at_four.exit_code == 1
    assert any("negative surrogate" in c["detail"] for c in report["checks"]
               if c["name"] == "surrogate" and not c["ok"])
    path.write_text(GAUSS_PLUGIN.format(le=2))  # every allowed sigma is fine
    assert runner.invoke(app, ["check-method", str(path)]).exit_code == 0


ADAPTIVE = textwrap.dedent('''
    from dataclasses import dataclass
    import torch
    from sgbench.api import LayerRule, Method, neurons

    class Window(LayerRule):
        def __init__(self):
            super().__init__("rect")
            self.register_buffer("w", torch.tensor(0.5))

        def sequence(self, neuron, T):
            h = self.w.reshape(())
            return torch.full((T,), neuron.v_threshold), torch.stack(
                [h, h, torch.full_like(h, 0.5), torch.full_like(h, 0.5)]).expand(T, -1)

    class Adaptive(Method):
        citation = "test"
        kinds = ("adaptive",)

        def layer_rule(self, ctx):
            return Window()

        def adapt(self, model, epoch, probe):
            {adapt}
''')


@pytest.mark.parametrize("adapt,message", [
    ("raise KeyError('half_width')", "KeyError: 'half_width'"),
    ("for n in neurons(model): n.rule.w.fill_(-1.0)", "g is 0 all over its support"),
    ("for n in neurons(model): n.rule.w = torch.ones(3)", "invalid for input of size 3"),
    ("while True: pass", "did not return within 2 s"),
])
def test_a_broken_adapt_fails_the_hooks_check_in_one_line(tmp_path, adapt, message):
    path = tmp_path / "adaptive.py"
    path.write_text(ADAPTIVE.format(adapt=adapt))
    limit = "2" if "while True" in adapt else "60"  # a first run may compile CPU kernels
    result = runner.invoke(app, ["check-method", str(path), "--time-limit", limit, "--json"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    hooks = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "hooks")
    assert not hooks["ok"] and message in hooks["detail"] and "\n" not in hooks["detail"]


def test_a_working_adapt_passes_and_is_checked_at_the_parameters_it_chose(tmp_path):
    path = tmp_path / "adaptive.py"
    path.write_text(ADAPTIVE.format(adapt="for n in neurons(model): n.rule.w.fill_(0.8)"))
    result = runner.invoke(app, ["check-method", str(path), "--json"])
    assert result.exit_code == 0, result.output


def test_a_support_declared_too_wide_fails(tmp_path):
    result, report = _check(_plugin(tmp_path, grad="return (x.abs() <= 0.5).double() * beta / "
                                    "(2 * beta) + 0 * x", support="return -3.0, 3.0"))
    assert result.exit_code == 1
    assert any("g > 0 only on" in c["detail"] for c in report["checks"] if not c["ok"])


def test_probe_potentials_give_each_layers_H_and_leave_the_model_alone():
    import torch
    from spikingjelly.activation_based import functional

    from sgbench.api import Probe, neurons
    from sgbench.registry import load_method
    from sgbench.testing import small_model

    model = small_model(load_method("ds_atgo"), dtype=torch.float32)  # running thresholds
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(4, 6, 1, 6, 6) * 2
    probe = Probe(x, torch.zeros(6, dtype=torch.long), torch.nn.CrossEntropyLoss(),
                  lambda m: None, "test")
    found = probe.potentials(model)
    assert list(found) == neurons(model)
    assert [tuple(h.shape) for h in found.values()] == [(4, 6, 4, 6, 6)] * 2
    assert not model.training and all(torch.equal(before[k], v)
                                      for k, v in model.state_dict().items())
    assert all(n.h_seq is None and not n.keep_h for n in neurons(model))
    # the first layer's H[0] is its first input current over tau (V starts at 0), in train mode
    model.train()
    current = model.body[1](model.body[0](x))
    functional.reset_net(model)
    assert torch.allclose(found[neurons(model)[0]][0], current[0] / 2, atol=1e-6)
