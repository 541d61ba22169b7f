"""Published numbers: the repository's file is valid, check finds problems, compare shows them."""
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sgbench.cli import app
from sgbench.results.compare import summarize
from sgbench.results.published import default_path, load

runner = CliRunner()


def test_check_passes_on_the_repository():
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 0, result.output
    assert "ok:" in result.stdout and "published entries" in result.stdout


def test_check_reports_an_unknown_method_a_bad_value_and_a_duplicate(tmp_path):
    data = yaml.safe_load(default_path().read_text())
    first = data["results"][0]
    data["results"] += [{**first, "method": "no_such_method"},
                        {**first, "source": "elsewhere", "evidence": "rumour"},
                        dict(first)]
    path = tmp_path / "published.yaml"
    path.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["check", "--published", str(path)])
    assert result.exit_code == 1
    assert "unknown method 'no_such_method'" in result.output
    assert "evidence 'rumour'" in result.output and "duplicate" in result.output


def test_compare_without_runs_shows_the_published_rows_with_their_evidence(tmp_path):
    result = runner.invoke(app, ["compare", "--runs", str(tmp_path), "--task", "cifar10", "--T",
                                 "4", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {row["method"]: row for row in json.loads(result.stdout)}
    assert rows["mpd_agl"]["published"]["top1"] == 96.35
    assert rows["mpd_agl"]["published"]["evidence"] == "secondary"
    assert rows["a2sg"]["published"]["top1"] == 96.74
    assert rows["LSG (external)"]["n"] == 0
    assert all(row["task"] == "cifar10" and row["T"] == 4 for row in rows.values())


def _record(method, seed, top1, task="cifar10", T=4, config="a", top1_best=None):
    return {"task": {"name": task, "version": 1, "sha256": config,
                     "config": {"train": {"epochs": 30}}}, "protocol": "controlled", "T": T,
            "method": {"name": method, "params": {}}, "seed": seed, "status": "ok",
            "created": f"{seed}", "metrics": {"top1": top1, "top1_best": top1_best or top1},
            "cost": {}}


def test_published_number_baseline_delta_welch_p_and_the_few_seeds_flag():
    records = [_record("mpd_agl", s, v) for s, v in enumerate([90.0, 91.0, 92.0])]
    records += [_record("rect", s, v) for s, v in enumerate([80.0, 81.0, 82.0])]
    records += [_record("atan", 0, 85.0)]
    rows = {r["method"]: r for r in summarize(records, "cifar10", 4, load(), "rect")}
    mpd = rows["mpd_agl"]
    assert mpd["published"]["top1"] == 96.35  # a best-epoch number: against our best epoch
    assert mpd["published"]["delta"] == 91.0 - 96.35
    assert mpd["baseline"]["delta"] == 10.0 and mpd["baseline"]["p_value"] < 0.01
    assert rows["atan"]["baseline"]["p_value"] is None  # one seed: no test
    from sgbench.results.table import render
    table = render(list(rows.values()), "md", ("top1",))
    assert "n<3" in table and "Δ rect" in table and "96.35 (secondary" in table
    assert "mixed configs" not in table


def test_runs_of_differing_task_configs_in_one_row_are_flagged():
    records = [_record("rect", s, 80.0, config="30 epochs") for s in range(3)]
    records += [_record("rect", 3, 70.0, config="10 epochs")]
    from sgbench.results.table import render
    rows = summarize(records, "cifar10", 4)
    assert rows[0]["n"] == 4 and rows[0]["configs"] == 2
    assert "mixed configs" in render(rows, "table", ("top1",))


def _runs(folder, epochs=5, seeds=(0, 1, 2), method="rect"):
    from sgbench.train import RunRequest, run

    for seed in seeds:
        run(RunRequest(method=method, task="digits", T=2, seed=seed, epochs=epochs,
                       latency_repeats=1, out_dir=folder, device="cpu"))


SUITE = {"name": "test", "version": 1, "epochs": 5, "seeds": [0, 1, 2], "min_tolerance": 1.0,
         "max_tolerance": 3.0, "methods": ["rect"], "tasks": ["digits"], "T": [2]}


def _pin(runs, path):
    from sgbench.record import load_records
    from sgbench.results.reference import pin

    path.write_text(json.dumps(pin(load_records(runs)[0], SUITE)))
    return str(path)


def test_regress_fails_after_a_deliberate_break_and_passes_when_the_reference_is_met(
        tmp_path, monkeypatch):
    from sgbench.registry import load_method

    _runs(tmp_path / "ok")
    pinned = _pin(tmp_path / "ok", tmp_path / "pinned.json")
    rect = load_method("rect")
    # the break: a window 1000 times wider (so 1000 times flatter), with the same parameters
    monkeypatch.setattr(rect, "shape_params", lambda self: [500.0, 500.0, 0.5, 0.5])
    _runs(tmp_path / "bad")
    ok = runner.invoke(app, ["regress", "--runs", str(tmp_path / "ok"), "--reference", pinned])
    assert ok.exit_code == 0 and "no regression (1 of 1" in ok.stdout, ok.output
    bad = runner.invoke(app, ["regress", "--runs", str(tmp_path / "bad"), "--reference", pinned])
    assert bad.exit_code == 1 and "regressions" in bad.stdout and "rect" in bad.stdout


def test_regress_matches_runs_to_pins_of_the_same_config_only(tmp_path):
    _runs(tmp_path / "pinned")
    pinned = _pin(tmp_path / "pinned", tmp_path / "pinned.json")
    _runs(tmp_path / "short", epochs=2)  # other epochs: another configuration
    result = runner.invoke(app, ["regress", "--runs", str(tmp_path / "short"), "--reference",
                                 pinned])
    assert result.exit_code == 1, result.output  # the pinned configuration has no runs here
    assert "match no pinned one" in result.output and "have no runs here" in result.output
    assert "regressions (" not in result.output
    assert "nothing checked: no run in" in " ".join(result.output.split())
    subset = runner.invoke(app, ["regress", "--runs", str(tmp_path / "short"), "--reference",
                                 pinned, "--subset"])
    assert subset.exit_code == 0 and "nothing checked" in subset.output


def test_a_configuration_too_noisy_to_pin_tightly_is_refused():
    from sgbench.errors import UserError
    from sgbench.results.reference import pin

    records = [_record("rect", s, v) for s, v in enumerate([60.0, 70.0, 80.0])]
    with pytest.raises(UserError, match="too noisy to pin within 3.0 points"):
        pin(records, {**SUITE, "T": [4], "tasks": ["cifar10"]})


def test_leaderboard_is_current_and_check_notices_a_stale_one(tmp_path, monkeypatch):
    from sgbench.results import leaderboard

    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # the repository's results/
    assert runner.invoke(app, ["reference", "leaderboard", "--check"]).exit_code == 0
    stale = tmp_path / "LEADERBOARD.md"
    stale.write_text("old\n")
    monkeypatch.setattr(leaderboard, "LEADERBOARD", stale)
    result = runner.invoke(app, ["reference", "leaderboard", "--check"])
    assert result.exit_code == 1 and "stale" in result.output
