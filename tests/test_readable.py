"""What a researcher reads: short labels, tables that fit, `show` of every recorded measure,
`task show`, per-epoch logs, profiles of trained weights, and the small CLI courtesies."""
import csv
import json

import pytest
from typer.testing import CliRunner

from sgbench.cli import app

runner = CliRunner()
QUICK = ["-t", "synthetic", "--epochs", "2", "--latency-repeats", "1"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def a2sg_runs(tmp_path_factory):
    """Two seeds of a2sg with one parameter changed from its default, one of atan."""
    out = tmp_path_factory.mktemp("runs")
    for seed in (0, 1):
        result = invoke("run", "-m", "a2sg", *QUICK, "--seed", seed, "--param", "sgv=var",
                        "--param", "search=false", "--eval-T", "1", "--out", out)
        assert result.exit_code == 0, result.output
    assert invoke("run", "-m", "atan", *QUICK, "--out", out).exit_code == 0
    return out


def test_a_configuration_is_labelled_by_the_params_it_changes(a2sg_runs):
    rows = json.loads(invoke("compare", "--runs", a2sg_runs, "--format", "json").stdout)
    labels = {row["label"] for row in rows}
    assert labels == {"atan", "a2sg (search=False, sgv=var)"}, labels
    a2sg = next(r for r in rows if r["method"] == "a2sg")
    assert a2sg["params"]["sgv"] == "var" and "beta0" in a2sg["params"]  # full params stay


def test_compare_fits_in_120_columns(a2sg_runs):
    result = runner.invoke(app, ["compare", "--runs", str(a2sg_runs), "--columns", "top1,synops"],
                           terminal_width=120)
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= 120, result.stdout


def test_compare_shows_the_final_diagnostics_as_columns(a2sg_runs):
    result = invoke("compare", "--runs", a2sg_runs, "--columns", "deep_coverage,tgc",
                    "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {row["method"]: row for row in json.loads(result.stdout)}
    record = json.loads(next(p for p in a2sg_runs.glob("*atan*.json")).read_text())
    summary = record["diagnostics"]["snapshots"][-1]["summary"]
    assert rows["atan"]["deep_coverage_mean"] == pytest.approx(summary["deep_coverage"])
    assert rows["atan"]["tgc_mean"] == pytest.approx(summary["tgc"])
    assert rows["a2sg"]["n"] == 2 and rows["a2sg"]["tgc_mean"] is not None


def test_compare_says_when_nothing_matches_and_validates_the_baseline(a2sg_runs):
    empty = invoke("compare", "--runs", a2sg_runs, "--task", "digits")
    assert empty.exit_code == 1 and "no records" in empty.output
    bad = invoke("compare", "--runs", a2sg_runs, "--baseline", "nosuch")
    assert bad.exit_code == 2 and "nosuch" in bad.output and "Traceback" not in bad.output
    good = invoke("compare", "--runs", a2sg_runs, "--baseline", "atan")
    assert good.exit_code == 0 and "Δ atan" in good.stdout


def test_show_prints_every_recorded_measure_and_a_glossary(a2sg_runs):
    path = next(p for p in a2sg_runs.glob("*.json") if "a2sg" in p.name)
    shown = runner.invoke(app, ["show", str(path)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    for needle in ("SynOps / MACs", "energy per sample", "latency batch 1", "per epoch",
                   "other timesteps (--eval-T)", "SGV: Var(dL/dH)", "TGC: mean cosine"):
        assert needle in shown.stdout, needle
    record = json.loads(path.read_text())
    layers = len(record["diagnostics"]["snapshots"][-1]["layers"])
    assert f"last {min(3, layers)} of {layers} spiking layers" in " ".join(shown.stdout.split())
    assert f"{record['metrics']['synops']:,.0f}" in shown.stdout


def test_show_notes_unbounded_surrogates(tmp_path):
    assert invoke("run", "-m", "atan", *QUICK, "--out", tmp_path).exit_code == 0
    shown = invoke("show", next(tmp_path.glob("*.json")))
    assert "atan has no bounded support" in shown.stdout
    assert invoke("run", "-m", "rect", *QUICK, "--out", tmp_path).exit_code == 0
    rect = invoke("show", next(tmp_path.glob("*rect*.json")))
    assert "no bounded support" not in rect.stdout


def test_task_show_prints_the_resolved_config():
    result = invoke("task", "show", "digits", "--T", "6", "-o", "train.lr=0.01", "--json")
    cfg = json.loads(result.stdout)
    assert cfg["T"] == 6 and cfg["train"]["lr"] == 0.01 and cfg["name"] == "digits"
    plain = invoke("task", "show", "digits")
    assert plain.exit_code == 0 and "config sha256" in plain.stdout and "train:" in plain.stdout
    assert invoke("task", "show", "digts").exit_code == 2


def test_csv_log_has_one_row_per_epoch(tmp_path):
    result = invoke("run", "-m", "atan", *QUICK, "--out", tmp_path, "--log", "csv")
    assert result.exit_code == 0, result.output
    (log,) = tmp_path.glob("*.epochs.csv")
    rows = list(csv.DictReader(log.open()))
    assert [r["epoch"] for r in rows] == ["1", "2"] and float(rows[0]["test_top1"]) >= 0
    bad = invoke("run", "-m", "atan", *QUICK, "--out", tmp_path, "--log", "wandb")
    assert bad.exit_code == 2 and "--log takes csv, tb" in bad.output


def test_profile_of_a_record_uses_its_trained_weights(tmp_path):
    assert invoke("run", "-m", "atan", *QUICK, "--out", tmp_path).exit_code == 0
    record_path = next(tmp_path.glob("*.json"))
    trained = invoke("profile", "--record", record_path, "--repeats", "1", "--json")
    assert trained.exit_code == 0, trained.output
    profile = json.loads(trained.stdout)
    assert profile["weights"].endswith(".ckpt.pt")
    assert profile["synops"] == pytest.approx(json.loads(record_path.read_text())["metrics"]
                                              ["synops"], rel=0.05)
    random = invoke("profile", "-t", "synthetic", "-m", "atan", "--repeats", "1")
    assert random.exit_code == 0 and "note: random weights" in random.output


@pytest.mark.parametrize("args,needle", [(["--version"], "sgbench 0."), (["-h"], "Usage"),
                                         (["run", "-h"], "--method")])
def test_version_and_short_help(args, needle):
    result = invoke(*args)
    assert result.exit_code == 0 and needle in result.output
    assert "<bool>" not in result.output
