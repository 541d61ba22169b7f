"""Statements a researcher can act on: P(worse / equal / better) with a ROPE, a verdict, the
seeds that would decide, across tasks by a hierarchical model; checked against baycomp."""
import csv
import io
import json

import numpy as np
import pytest
from scipy.stats import t as student
from typer.testing import CliRunner

from sgbench.results import bayes
from sgbench.cli import app
from sgbench.results.compare import summarize
from sgbench.progress import GridStatus, PlainProgress
from sgbench.results.ranking import across_tasks, bayes_across
from sgbench.results.table import render
from test_ranking import _record

baycomp = pytest.importorskip("baycomp")
runner = CliRunner()

SCORES = [  # (a, b) per-seed top-1 pairs, as records hold them
    ([85.1, 84.7, 85.6], [85.9, 85.2, 86.4]),
    ([89.43, 89.1, 89.9, 88.7, 89.5], [89.67, 89.9, 89.2, 89.3, 90.1]),
    ([93.2, 93.9, 92.6], [95.8, 96.1, 95.6]),
    ([70.0, 72.0, 71.0, 69.5], [70.2, 71.6, 71.1, 69.9]),
]


@pytest.mark.parametrize("a, b", SCORES)
@pytest.mark.parametrize("rope", [0.5, 1.0, 0.05])
def test_the_correlated_t_test_is_baycomps(a, b, rope):
    """baycomp's two_on_single always corrects for cross-validation (rho = 1 / folds): with
    that rho, sgbench's probabilities are baycomp's."""
    x, y = np.array(a), np.array(b)
    expected = baycomp.two_on_single(x, y, rope=rope, runs=1)
    got = bayes.correlated_t(y - x, rho=1 / len(x)).probs(rope)
    assert got == pytest.approx(tuple(expected), abs=1e-12)


@pytest.mark.parametrize("a, b", SCORES)
def test_independent_seeds_have_no_correlation_term(a, b):
    d = np.array(b) - np.array(a)
    post = bayes.posterior(dict(enumerate(a)), dict(enumerate(b)))
    scale = d.std(ddof=1) / np.sqrt(len(d))
    assert (post.mean, post.scale, post.df) == pytest.approx((d.mean(), scale, len(d) - 1))
    better = student.sf(0.5, len(d) - 1, d.mean(), scale)
    assert post.probs(0.5)[2] == pytest.approx(better)


def test_identical_scores_are_equal_for_certain():
    same = {0: 88.0, 1: 89.0, 2: 87.5}
    found = bayes.compare_single(same, same)
    assert (found["p_worse"], found["p_equal"], found["p_better"]) == (0.0, 1.0, 0.0)
    assert found["verdict"] == "equal"


def test_scores_far_apart_are_better_or_worse():
    low, high = {0: 80.0, 1: 80.5, 2: 79.8}, {0: 90.0, 1: 90.4, 2: 89.9}
    assert bayes.compare_single(low, high)["verdict"] == "better"
    assert bayes.compare_single(high, low)["verdict"] == "worse"
    assert bayes.compare_single(low, high)["p_better"] > 0.999


def test_one_seed_is_undecided_without_probabilities():
    found = bayes.compare_single({0: 80.0}, {0: 90.0})
    assert found["p_better"] is None and found["verdict"] == "undecided (more seeds)"


def test_unequal_seed_counts_pair_the_shared_seeds_or_fall_back_to_two_samples():
    a, b = {0: 85.0, 1: 86.0, 2: 85.5, 3: 84.0}, {0: 85.6, 1: 86.7, 2: 86.1}
    paired = bayes.posterior(a, b)
    assert paired.df == 2 and paired.mean == pytest.approx(np.mean([0.6, 0.7, 0.6]))
    apart = bayes.posterior({0: 85.0, 1: 86.0}, {5: 86.0, 6: 87.5, 7: 86.5})
    assert apart.mean == pytest.approx(np.mean([86.0, 87.5, 86.5]) - 85.5)
    assert 1 <= apart.df <= 3  # Welch-Satterthwaite


def test_undecided_comparisons_say_how_many_seeds_would_decide():
    a, b = dict(enumerate(SCORES[0][0])), dict(enumerate(SCORES[0][1]))
    found = bayes.compare_single(a, b)
    assert found["verdict"].startswith("undecided") and found["seeds_needed"] > 3
    post = bayes.posterior(a, b)
    n = found["seeds_needed"]
    shrunk = bayes.Posterior(post.mean, post.scale * np.sqrt(3 / n), n - 1)
    assert bayes.verdict(shrunk.probs(0.5)) != "undecided (more seeds)"
    edge = bayes.Posterior(0.5, 0.3, 2)  # a mean at the ROPE's edge never decides
    assert bayes.seeds_needed(edge, 3, 0.5) is None


# -- across tasks ---------------------------------------------------------------------------

def test_hierarchical_identical_scores_are_equal():
    assert bayes.hierarchical([[0.0, 0.0, 0.0]] * 3) == (0.0, 1.0, 0.0)


def test_hierarchical_consistent_gains_are_better_and_mixed_ones_undecided():
    rng = np.random.default_rng(3)
    gains = [rng.normal(3.0, 0.3, 3) for _ in range(8)]
    assert bayes.hierarchical(gains)[2] > 0.95
    mixed = bayes.hierarchical([[2.0, 3.0, 2.5], [-2.0, -3.0, -2.5], [0.1, 0.2, 0.0]])
    assert mixed[0] > 0.3 and mixed[2] > 0.3


def test_hierarchical_predicts_a_new_tasks_difference():
    """With many tasks whose true differences are N(1, 0.5^2), a new task's difference exceeds
    the ROPE 0.5 with probability P(N(1, 0.25) > 0.5) = 0.84."""
    rng = np.random.default_rng(7)
    deltas = rng.normal(1.0, 0.5, 150)
    diffs = [rng.normal(d, 0.05, 4) for d in deltas]
    assert bayes.hierarchical(diffs)[2] == pytest.approx(0.841, abs=0.04)


def test_hierarchical_runs_many_comparisons_alike_and_reproducibly():
    pairs = [[[1.0, 1.2, 0.9], [0.5, 0.7, 0.6]], [[0.0, 0.1, -0.1], [0.2, 0.0, 0.1]]]
    many = bayes.hierarchical_many(pairs)
    assert many == bayes.hierarchical_many(pairs)
    assert many[0] == pytest.approx(bayes.hierarchical(pairs[0]), abs=0.03)
    with pytest.raises(ValueError):
        bayes.hierarchical([[1.0, 2.0]])  # one task


@pytest.mark.slow
def test_hierarchical_is_near_baycomps_model():
    """baycomp's hierarchical test needs pystan (a Stan compiler): slow, and skipped without."""
    pytest.importorskip("stan")
    rng = np.random.default_rng(11)
    x = rng.normal(85, 0.5, (5, 3))
    y = x + rng.normal(0.8, 0.4, (5, 1)) + rng.normal(0, 0.3, (5, 3))
    expected = baycomp.two_on_multiple(x, y, rope=0.5, runs=1)
    ours = bayes.hierarchical(list(y - x), 0.5)
    assert ours == pytest.approx(tuple(expected), abs=0.1)


# -- in the leaderboards --------------------------------------------------------------------

def _board():
    values = {"atan": [90.0, 91.0, 92.0], "rect": [80.0, 81.0, 82.5],
              "sigmoid": [90.1, 91.05, 92.1]}
    return [_record(m, s, v, task=task) for task in ("digits", "digits_deep")
            for m, vs in values.items() for s, v in enumerate(vs)]


def test_compare_gives_each_row_its_probabilities_and_verdict():
    rows = summarize(_board(), "digits", baseline="atan")
    by = {r["method"]: r["baseline"].get("bayes") for r in rows}
    assert by["atan"] is None
    assert by["rect"]["verdict"] == "worse" and by["sigmoid"]["verdict"] == "equal"
    table = render(rows, "table")
    assert "P(w/e/b)" in table and "0.00 / 1.00 / 0.00" in table and "worse" in table
    parsed = list(csv.DictReader(io.StringIO(render(rows, "csv"))))
    assert {r["method"]: r["verdict"] for r in parsed}["rect"] == "worse"
    rect = next(r for r in json.loads(render(rows, "json")) if r["method"] == "rect")
    assert rect["baseline"]["bayes"]["p_equal"] is not None
    assert "| verdict" in render(rows, "md") and "<th>verdict" in render(rows, "html")


def test_rope_comes_from_the_option_then_the_task_then_the_default():
    wide = summarize(_board(), "digits", baseline="atan", rope=20.0)
    assert {r["method"]: r["baseline"].get("bayes", {}) and r["baseline"]["bayes"]["verdict"]
            for r in wide}["rect"] == "equal"
    rows = summarize(_board(), "digits", baseline="atan")
    assert next(r for r in rows if r["method"] == "rect")["baseline"]["bayes"]["rope"] == 0.5


@pytest.mark.parametrize("option", [["--rope", "0"], ["--rope", "nan"], ["--level", "1"],
                                    ["--level", "0.3"]])
def test_compare_refuses_a_rope_or_level_out_of_range(tmp_path, option):
    result = runner.invoke(app, ["compare", "--runs", str(tmp_path), "--baseline", "atan",
                                 *option])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_across_tasks_gives_pairwise_probabilities():
    found = bayes_across(across_tasks(summarize(_board())), baseline="atan")
    assert found["vs_baseline"]["rect"][0] > 0.5  # worse on both tasks by ~10 points
    assert set(found["pairs"]) == {(a, b) for a in ("atan", "rect", "sigmoid")
                                   for b in ("atan", "rect", "sigmoid") if a != b}
    w, e, b = found["pairs"][("atan", "rect")]
    assert found["pairs"][("rect", "atan")] == (b, e, w)


# -- progress in a log file -----------------------------------------------------------------

class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_log_file_gets_a_progress_line_at_the_interval():
    progress = PlainProgress("atan on digits", every=10.0)
    progress.clock = clock = _Clock()
    progress.start(3, 0)
    clock.now = 5.0
    assert progress.line(10, 100, 1.0, 50.0, 640) is None  # not yet
    clock.now = 10.0
    line = progress.line(20, 100, 0.9, 55.0, 1280)
    assert "epoch 1/3" in line and "batch 20/100" in line and "128 samples/s" in line
    assert "eta 0:40 epoch, 2:20 training" in line


def test_a_run_piped_to_a_file_shows_progress_before_its_epoch_ends(tmp_path, monkeypatch):
    monkeypatch.setenv("SGBENCH_PROGRESS_SECONDS", "0.05")
    result = runner.invoke(app, ["run", "-m", "atan", "-t", "digits", "--T", "2", "--epochs",
                                 "1", "--out", str(tmp_path), "--threads", "1",
                                 "--latency-repeats", "2", "--fd-weights", "0"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    batches = [i for i, line in enumerate(lines) if "batch " in line and "samples/s" in line]
    done = next(i for i, line in enumerate(lines) if "epoch 1/1  train loss" in line)
    assert batches and batches[0] < done


def test_a_grid_tells_its_jobs_in_a_log_file(capsys):
    status = GridStatus("sweep", 10)
    status.quiet, status.every = False, 0.0
    status.tell(4, 2)
    assert "sweep: 4 of 10 jobs finished, 2 running" in capsys.readouterr().err


def test_a_board_still_running_is_left_out_of_the_ranking_across_tasks():
    partial = [_record("atan", s, 80.0 + s, task="fashion_mnist") for s in range(3)]
    result = across_tasks(summarize(_board() + partial))
    assert result["tasks"] == ["digits", "digits_deep"] and result["left_out"] == ["fashion_mnist"]
    assert result["methods"] and set(result["methods"]) == {"atan", "rect", "sigmoid"}
