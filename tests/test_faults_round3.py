"""Faults, round three (the classes fixed so far): text from records drawn literally, the
contract check's limits, and bounds on the benchmark commands' numbers."""
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sgbench.cli import app
from sgbench.results.plots import draw
from sgbench.testing import check_method
from test_ranking import _record

runner = CliRunner()


def _one_line_exit_2(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    return result.output


# -- class 5: text from records is text ------------------------------------------------------
@pytest.mark.parametrize("kind", ["rank", "cd", "bayes"])
@pytest.mark.parametrize("name", ["$\\foo{$", "a_$x^2$_b"])
def test_names_with_tex_are_drawn_literally(tmp_path, kind, name):
    records = [_record(m, s, v + s, task=t) for t in ("digits", "$\\foo{$")
               for m, v in (("atan", 90.0), (name, 80.0), ("rect", 85.0)) for s in range(3)]
    out = draw(kind, records, "digits" if kind == "rank" else None, tmp_path / "f.png",
               baseline="atan")
    assert out.stat().st_size > 0


# -- class 8: check-method's limits -------------------------------------------------------------
@pytest.mark.parametrize("limit", ["inf", "1e10", "nan", "0", "-3"])
def test_time_limits_that_are_no_limit_are_refused(limit):
    assert "--time-limit" in _one_line_exit_2(["check-method", "atan", "--time-limit", limit])


def test_a_hook_that_exits_the_interpreter_fails_its_check():
    from sgbench.registry import load_method

    base = load_method("atan")

    class Quitter(base):
        def on_epoch_start(self, model, epoch, epochs):
            raise SystemExit(0)

    checks = {c.name: c for c in check_method(Quitter)}
    assert not checks["hooks"].ok and "sys.exit(0)" in checks["hooks"].detail


# -- class 9: every number bounded ----------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["bench", "epoch", "--task", "digits", "--steps", "1000000000"],
    ["bench", "epoch", "--task", "digits", "--threads", "100000"],
    ["bench", "neuron", "--T", "10000000", "--neurons", "1"],
    ["bench", "neuron", "--repeats", "100000000"],
    ["bench", "profile", "--task", "digits", "--threads", "0"],
])
def test_bench_numbers_out_of_range_end_in_one_line(args):
    _one_line_exit_2(args)


def test_plot_rank_refuses_a_baseline_version_compare_refuses(tmp_path):
    """On the committed Fashion-MNIST board: both name the versions that have runs."""
    board = Path(__file__).resolve().parents[1] / "results" / "leaderboards" / "fashion_mnist"
    args = ["--runs", str(board), "--baseline", "atan@0000000"]
    for command in (["compare"], ["plot", "rank", "--out", str(tmp_path / "r.png")]):
        output = _one_line_exit_2(command + args)
        assert "methods with runs:" in output and "atan@" in output
    assert not (tmp_path / "r.png").exists()


# -- class 2: paths and folders checked before any work -----------------------------------------
def _spec(tmp_path, out):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"name: t\nout: {out}\nmethods: [atan]\ntasks: [digits]\nseeds: [0]\n"
                    "device: cpu\n")
    return str(spec)


@pytest.mark.parametrize("out", ["afile", "/proc/sgbench-sweep"])
def test_a_sweep_folder_that_cannot_be_one_ends_in_one_line(tmp_path, out):
    (tmp_path / "afile").write_text("mine")
    target = str(tmp_path / out) if out == "afile" else out
    result = runner.invoke(app, ["sweep", _spec(tmp_path, target)])
    assert result.exit_code == 1 and "cannot write records" in result.output
    assert (tmp_path / "afile").read_text() == "mine"


def test_slurm_without_slurm_is_refused_up_front(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun
    result = runner.invoke(app, ["sweep", _spec(tmp_path, tmp_path / "sw"), "--executor",
                                 "slurm"])
    assert result.exit_code == 1 and "needs a Slurm cluster" in result.output
    assert not (tmp_path / "sw").exists()


@pytest.mark.parametrize("where", ["afile/cd.png", "/proc/sgbench-cd.png"])
def test_a_figure_under_a_file_or_proc_ends_in_one_line(tmp_path, where):
    (tmp_path / "afile").write_text("mine")
    out = str(tmp_path / where) if where.startswith("afile") else where
    board = Path(__file__).resolve().parents[1] / "results" / "leaderboards"
    result = runner.invoke(app, ["plot", "cd", "--runs", str(board), "--out", out])
    assert result.exit_code == 1 and "cannot write the figure" in result.output
    assert "Traceback" not in result.output and (tmp_path / "afile").read_text() == "mine"


def test_a_folder_where_the_csv_log_goes_is_found_before_training(tmp_path):
    out = tmp_path / "runs"
    first = runner.invoke(app, ["run", "-m", "atan", "-t", "digits", "--T", "2", "--epochs", "1",
                                "--out", str(out), "--log", "csv", "--latency-repeats", "2",
                                "--fd-weights", "0", "--json"])
    assert first.exit_code == 0, first.output
    csv_log = next(out.glob("*.epochs.csv"))
    for f in out.glob("*.json"):
        f.unlink()  # the configuration may run again
    csv_log.unlink()
    csv_log.mkdir()
    again = runner.invoke(app, ["run", "-m", "atan", "-t", "digits", "--T", "2", "--epochs",
                                "1", "--out", str(out), "--log", "csv"])
    assert again.exit_code == 1 and "per-epoch log" in again.output
    assert "epoch 1/1" not in again.output  # refused before training


# -- class 3: data and model checked before training ------------------------------------------
@pytest.mark.parametrize("override, expected, code", [
    ("data.n_train=-5", "data.n_train must lie", 2),
    ("data.n_classes=0", "data.n_classes must lie", 2),
    ("data.size=0", "data.size must lie", 2),
    ("data.size=1", "cannot take the data's samples", 1),  # the conv's pool: nothing left
])
def test_data_and_model_that_disagree_end_before_training(tmp_path, override, expected, code):
    result = runner.invoke(app, ["run", "-m", "atan", "-t", "synthetic", "-o", override,
                                 "-o", "model.pools=[2]", "--out", str(tmp_path)])
    assert result.exit_code == code and expected in result.output, result.output
    assert "Traceback" not in result.output and "epoch 1/" not in result.output
    assert not list(tmp_path.glob("*.json"))


def test_labels_outside_the_class_range_are_named(monkeypatch):
    import torch

    from sgbench.data import synthetic as synthetic_module
    from sgbench.train.preflight import check_data
    from sgbench.errors import UserError

    data = synthetic_module.synthetic(n_train=8, n_test=4, n_classes=3)
    data.train.y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 0])
    with pytest.raises(UserError, match=r"labels outside \[0, 3\): 0 to 3"):
        check_data(data)
    data.train.y, data.test.y = data.train.y[:0], data.test.y
    data.train.x = data.train.x[:0]
    with pytest.raises(UserError, match="training set is empty"):
        check_data(data)
