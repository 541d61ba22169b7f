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
