"""Leaderboards a researcher can act on: ranks, intervals, corrected significance, an
unambiguous baseline, suspicious-result flags, time-to-target, the ranking across tasks, and
tables that fit the terminal without losing content."""
import csv
import io
import json
import math

import pytest
from scipy.stats import ttest_ind
from typer.testing import CliRunner

from sgbench.cli import app
from sgbench.results.compare import summarize
from sgbench.errors import UsageError, UserError
from sgbench.results.flags import search_report
from sgbench.results.ranking import across_tasks
from sgbench.results.stats import holm, mean_ranks, nemenyi_cd, welch
from sgbench.results.table import render


def _record(method, seed, top1, task="digits", params=None, history=None, source="s1",
            search=None, created=None):
    history = history or [{"epoch": 1, "train_loss": 1.0 - top1 / 200, "test_loss": 0.5,
                           "test_top1": top1 - 5, "epoch_time_s": 10.0},
                          {"epoch": 2, "train_loss": 0.9 - top1 / 200, "test_loss": 0.4,
                           "test_top1": top1, "epoch_time_s": 12.0}]
    return {"run_id": f"{task}_{method}_s{seed}_{source}", "task": {
                "name": task, "version": 1, "sha256": "c",
                "config": {"train": {"epochs": 2}, "data": {"dataset": "digits"}}},
            "protocol": "controlled", "T": 4, "seed": seed, "status": "ok",
            "created": created or f"2026-01-0{seed + 1}",
            "method": {"name": method, "params": params or {}, "defaults": {},
                       "source_sha256": source, "search": search or {}},
            "metrics": {"top1": top1, "top1_best": top1}, "cost": {}, "history": history}


def _board(**spread):
    values = {"atan": [90.0, 91.0, 92.0], "rect": [80.0, 81.0, 82.5], "sigmoid": [89.5, 90.5,
                                                                                     91.2]}
    values.update(spread)
    return [_record(m, s, v) for m, vs in values.items() for s, v in enumerate(vs)]


# -- the statistics ----------------------------------------------------------------------------

def test_holm_steps_down_and_stays_monotone():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, None, 0.9]) == [1.0, None, 1.0]


def test_welch_interval_is_scipys_and_holds_the_difference():
    a, b = [90.0, 91.0, 92.5], [80.0, 81.5, 82.0]
    p, (low, high) = welch(a, b)
    assert p == pytest.approx(ttest_ind(a, b, equal_var=False).pvalue)
    assert low < sum(a) / 3 - sum(b) / 3 < high and low > 0
    assert welch([1.0], [2.0, 3.0]) == (None, None)


def test_nemenyi_critical_difference_matches_demsar_table():
    # Demšar 2006, Table 5(a): q_0.05 = 2.728 for k = 5; CD = q sqrt(k (k + 1) / (6 N))
    assert nemenyi_cd(5, 10) == pytest.approx(2.728 * math.sqrt(30 / 60), abs=2e-3)


def test_mean_ranks_share_ties():
    ranks = mean_ranks({"t1": {"a": 90, "b": 80, "c": 80}, "t2": {"a": 70, "b": 75, "c": 60}})
    assert ranks == {"a": 1.5, "b": 1.75, "c": 2.75}  # (1 + 2) / 2, (2.5 + 1) / 2, (2.5 + 3) / 2


# -- ranked rows ----------------------------------------------------------------------------

def test_rows_are_ranked_with_interval_and_holm_corrected_significance():
    rows = summarize(_board(), "digits", baseline="atan")
    assert [r["method"] for r in rows] == ["atan", "sigmoid", "rect"]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    rect = rows[2]["baseline"]
    raw = ttest_ind([80.0, 81.0, 82.5], [90.0, 91.0, 92.0], equal_var=False).pvalue
    assert rect["p_value"] == pytest.approx(raw)
    assert rect["p_holm"] == pytest.approx(min(1.0, 2 * raw))  # two rows against atan
    assert rect["significant"] and rect["ci"][1] < 0
    assert rows[0]["above"] == [3] and rows[2]["above"] == []  # atan beats rect, all pairs
    assert rows[0]["top1_runs"] == [90.0, 91.0, 92.0]  # per-seed values in order of seeds
    table = render(rows, "table", ("top1",))
    assert "Δ atan [95 % CI]" in table and " *" in table and "above ranks" in table


def test_a_baseline_matching_several_configurations_names_them():
    records = _board() + [_record("atan", s, 70.0 + s, params={"alpha": 4.0}) for s in range(3)]
    with pytest.raises(UsageError) as exc:
        summarize(records, "digits", baseline="atan")
    assert "'atan (defaults)@s1'" in str(exc.value)
    assert "'atan (alpha=4.0)@s1'" in str(exc.value)
    rows = summarize(records, "digits", baseline="atan (alpha=4.0)")
    assert next(r for r in rows if r["method"] == "rect")["baseline"]["delta"] == \
        pytest.approx(81.1666 - 71.0, abs=1e-3)
    rows = summarize(records, "digits", baseline="atan (defaults)")
    assert next(r for r in rows if r["label"] == "atan")["baseline"]["delta"] is None


def test_two_versions_of_a_method_are_labelled_and_picked_by_hash():
    records = _board() + [_record("atan", s, 60.0 + s, source="s2abcdef", created=f"2027-0{s + 1}")
                          for s in range(3)]
    rows = summarize(records, "digits")
    labels = sorted(r["label"] for r in rows if r["method"] == "atan")
    assert labels == ["atan @s1", "atan @s2abcde"]
    from sgbench.results.compare import flags

    older = next(r for r in rows if r["label"] == "atan @s1")
    newer = next(r for r in rows if r["label"] == "atan @s2abcde")
    assert "older version (newest @s2abcde)" in flags(older) and not any(
        "older" in f for f in flags(newer))
    rows = summarize(records, "digits", baseline="atan@s2")
    assert next(r for r in rows if r["method"] == "rect")["baseline"]["delta"] == \
        pytest.approx(81.1666 - 61.0, abs=1e-3)


# -- flags ----------------------------------------------------------------------------------

def test_bit_identical_rows_are_flagged_as_twins():
    records = _board() + [_record("st_asg", s, v) for s, v in enumerate([80.0, 81.0, 82.5])]
    table = render(summarize(records, "digits"), "table", ("top1",))
    assert "= st_asg (bit-identical)" in table and "= rect (bit-identical)" in table
    assert "= atan" not in table


def test_outlier_seed_near_chance_and_not_finished_runs_are_flagged():
    records = _board(rect=[81.0, 81.5, 60.0], sigmoid=[11.0, 12.0, 10.5])
    records.append({**_record("atan", 3, 0.0), "status": "diverged"})
    rows = {r["method"]: r for r in summarize(records, "digits")}
    from sgbench.results.compare import flags

    assert "outlier seed 2" in flags(rows["rect"])
    assert "near chance (10 %)" in flags(rows["sigmoid"])
    assert "1 diverged" in flags(rows["atan"])


def test_a_search_that_ended_at_its_bound_is_recorded_and_flagged():
    snapshot = {"layers": [{"p_names": ["left", "right"], "p": [[0.25, 0.25], [1.0, 1.0]]},
                           {"p_names": ["left", "right"], "p": [[0.5, 0.5], [0.7, 0.7]]}]}
    report = search_report({"left": (0.25, 1.0)}, snapshot)
    assert report["left"]["chosen"] == [[0.25, 1.0], [0.5, 0.7]]
    assert report["left"]["layers_at_bound"] == 1 and report["left"]["at_max"] == 1
    records = _board() + [_record("a2sg", s, 85.0 + s, search=report) for s in range(3)]
    row = next(r for r in summarize(records, "digits") if r["method"] == "a2sg")
    from sgbench.results.compare import flags

    assert "search left at max in 1/2 layers" in flags(row)


def test_time_to_target_from_each_runs_history(monkeypatch):
    import sgbench.config

    monkeypatch.setattr(sgbench.config, "task_annotations", lambda name: {"target_top1": 88.0})
    rows = {r["method"]: r for r in summarize(_board(), "digits")}
    # atan reaches 88 at epoch 2 on every seed (85-87 at epoch 1), after 10 + 12 s
    assert rows["atan"]["reached"] == 3 and rows["atan"]["target_epoch_mean"] == 2
    assert rows["atan"]["target_s_mean"] == 22.0
    assert rows["rect"]["reached"] == 0
    table = render(list(rows.values()), "table", ("top1",))
    assert "to 88 %: epoch, time" in table and "2.0, 22 s" in table and "not reached" in table


def test_the_target_is_read_from_the_task_and_kept_out_of_its_config():
    from sgbench.config import resolve_task, task_annotations

    assert task_annotations("fashion_mnist_deep")["target_top1"] > 0
    assert "target_top1" not in resolve_task("fashion_mnist_deep")


def test_a_bad_target_is_one_clear_error(tmp_path):
    from sgbench.config import resolve_task

    task = tmp_path / "t.yaml"
    task.write_text("name: t\nversion: 1\ntarget_top1: 140\ndata: {dataset: digits}\n"
                    "model: {arch: convnet}\n")
    with pytest.raises(UserError, match="target_top1"):
        resolve_task(str(task))


# -- across tasks -----------------------------------------------------------------------------

def test_ranking_across_tasks_with_friedman_and_critical_difference():
    records = _board() + [_record(m, s, v + s, task="digits_deep")
                          for m, v in (("atan", 70.0), ("rect", 60.0), ("sigmoid", 75.0))
                          for s in range(3)]
    result = across_tasks(summarize(records))
    assert result["tasks"] == ["digits", "digits_deep"]
    assert result["mean_rank"] == {"atan": 1.5, "sigmoid": 1.5, "rect": 3.0}
    assert 0 < result["friedman_p"] < 1 and result["cd"] == pytest.approx(nemenyi_cd(3, 2))
    with pytest.raises(UsageError, match="two tasks"):
        across_tasks(summarize(_board()))


# -- output that keeps every column ------------------------------------------------------------

def test_csv_keeps_every_column_of_the_table():
    rows = summarize(_board(), "digits", baseline="atan")
    table_headers = [h.strip() for h in render(rows, "table", ("top1",)).splitlines()[-5]
                     .split("  ") if h.strip()]
    reader = csv.reader(io.StringIO(render(rows, "csv", ("top1",))))
    header = next(reader)
    assert all(h in header for h in table_headers)
    assert {"baseline_ci_low", "baseline_p_holm", "top1_runs", "rank"} <= set(header)
    assert len(list(reader)) == 3


def test_a_wide_table_wraps_to_the_width_without_losing_content():
    params = {"beta_max": 2.0, "beta_min": 0.1, "h": 0.0, "incumbent": False, "sgv": "var"}
    records = _board() + [_record("a2sg", s, 70.0 + s, params=params) for s in range(3)]
    rows = summarize(records, "digits", baseline="atan")
    wide = render(rows, "table", ("top1", "synops", "energy_uj"))
    assert max(map(len, wide.splitlines())) > 100
    narrow = render(rows, "table", ("top1", "synops", "energy_uj"), width=100)
    assert max(map(len, narrow.splitlines())) <= 100
    flat = " ".join(" ".join(line.replace("│", " ").split()) for line in narrow.splitlines())
    for word in ("a2sg", "beta_max=2.0,", "incumbent=False,", "sgv=var)", "81.17"):
        assert word in flat


def test_compare_fits_the_terminal_and_list_methods_is_not_cut_when_piped(tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir()
    for i, record in enumerate(_board()):
        full = {**record, "schema": "sgbench.run/2", "env": {}}
        (folder / f"r{i}.json").write_text(json.dumps(full))
    result = CliRunner().invoke(app, ["compare", "--runs", str(folder), "--baseline", "atan"],
                                env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert max(map(len, result.stdout.splitlines())) <= 80
    low, high = welch([80.0, 81.0, 82.5], [90.0, 91.0, 92.0])[1]
    assert "3. rect" in result.stdout
    assert f"Δ atan [95 % CI]: -9.83 [{low:+.2f}, {high:+.2f}]" in result.stdout
    listed = CliRunner().invoke(app, ["list", "methods"], env={"COLUMNS": ""})
    assert "superspike" in listed.stdout and "…" not in listed.stdout
