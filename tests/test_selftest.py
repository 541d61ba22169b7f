"""`sgbench selftest --gpu`: its plan fits ten minutes, it refuses without CUDA in one line, and
it writes its JSON and Markdown summaries, saying what it skipped (the GPU steps themselves run
only on a CUDA machine)."""
import json

from typer.testing import CliRunner

from sgbench.cli import app
from sgbench.bench.selftest import TOTAL_BUDGET_S, Outcome, plan, selftest

runner = CliRunner()


def test_the_dry_run_lists_every_step_with_its_budget(tmp_path):
    result = runner.invoke(app, ["selftest", "--gpu", "--dry-run", "--out", str(tmp_path)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    steps = plan(tmp_path, None)
    assert sum(s.budget_s for s in steps) <= TOTAL_BUDGET_S == 600
    for step in steps:
        assert step.name in result.output and f" {step.budget_s} " in result.output
    assert {"gpu tests", "bench train", "jobs per gpu 1", "jobs per gpu 4",
            "fashion_mnist_sj"} <= {s.name for s in steps}


def test_without_cuda_it_refuses_in_one_line(tmp_path):
    result = runner.invoke(app, ["selftest", "--gpu", "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "needs a CUDA device" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "s").exists()


def test_it_writes_both_summaries_and_names_what_it_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("SGBENCH_SYSTEM_DATA", "")
    ran = []

    def fake(step, env):
        ran.append(step.name)
        return Outcome(step.name, "ok", 1.0, "exit 0", ["done"])

    json_path, md_path = selftest(tmp_path / "out", tmp_path / "no-data", fake, cuda=True)
    report = json.loads(json_path.read_text())
    status = {s["name"]: s for s in report["steps"]}
    assert status["fashion_mnist_sj"]["status"] == "skipped"
    assert "Fashion-MNIST not found" in status["fashion_mnist_sj"]["note"]
    assert "gpu tests" in ran and status["gpu tests"]["status"] == "ok"
    assert "| fashion_mnist_sj | skipped |" in md_path.read_text()


def test_the_grid_it_times_is_a_valid_sweep(tmp_path):
    from sgbench.sweep.spec import load_spec

    plan(tmp_path, None)
    spec = load_spec(tmp_path / "grid.yaml", out=tmp_path / "grid-1")
    assert len(spec.jobs) == 8
