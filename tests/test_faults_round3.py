"""Faults, round three, one section per class of the issue: the one safe writer, paths checked
before work, data checked before training, readers that survive any record, text drawn
literally, the self-healing kernel cache, the contract check's limits and bounded numbers."""
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

    ok, detail = _hooks_check(Quitter, 60)
    assert not ok and "sys.exit(0)" in detail


def _hooks_check(cls, limit_s):
    """check-method's hooks check alone, run as check_method runs each check."""
    from sgbench.testing import Bound, _in_child, check_hooks

    return _in_child(check_hooks, Bound(cls, cls.Params()), limit_s)


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


# -- class 1: one safe writer ------------------------------------------------------------------
def _outside(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("the user's")
    return target


@pytest.mark.parametrize("planted", ["symlink", "hardlink", "fifo", "user's file"])
def test_the_writer_refuses_links_special_files_and_files_not_its_own(tmp_path, planted):
    import os

    from sgbench.errors import UserError
    from sgbench.files import same_text, write_atomic

    outside, path = _outside(tmp_path), tmp_path / "out" / "grid.yaml"
    path.parent.mkdir()
    {"symlink": lambda: path.symlink_to(outside), "hardlink": lambda: os.link(outside, path),
     "fifo": lambda: os.mkfifo(path), "user's file": lambda: path.write_text("mine")}[planted]()
    with pytest.raises(UserError, match="symbolic link|hard link|not a regular file|not written"):
        write_atomic(path, "new", same_text("new"))
    assert outside.read_text() == "the user's"
    if planted == "user's file":
        assert path.read_text() == "mine"


@pytest.mark.parametrize("planted", ["user's grid", "symlink"])
def test_selftest_dry_run_leaves_a_users_grid_alone(tmp_path, planted):
    outside, out = _outside(tmp_path), tmp_path / "st"
    out.mkdir()
    if planted == "symlink":
        (out / "grid.yaml").symlink_to(outside)
    else:
        (out / "grid.yaml").write_text("mine")
    result = runner.invoke(app, ["selftest", "--gpu", "--dry-run", "--out", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert outside.read_text() == "the user's"
    assert planted == "symlink" or (out / "grid.yaml").read_text() == "mine"


def test_the_leaderboard_is_not_written_through_a_link(tmp_path, monkeypatch):
    from sgbench.errors import UserError
    from sgbench.results import leaderboard

    outside, link = _outside(tmp_path), tmp_path / "LEADERBOARD.md"
    link.symlink_to(outside)
    monkeypatch.setattr(leaderboard, "LEADERBOARD", link)
    monkeypatch.setattr(leaderboard, "leaderboard", lambda: leaderboard.TITLE + " new\n")
    with pytest.raises(UserError, match="symbolic link"):
        leaderboard.write_leaderboard()
    assert outside.read_text() == "the user's"


@pytest.mark.parametrize("planted", ["hardlink", "fifo"])
def test_a_run_lock_that_is_not_sgbench_s_own_file_is_refused(tmp_path, planted):
    import os

    from sgbench.checkpoint import RunLock
    from sgbench.errors import UserError

    outside, path = _outside(tmp_path), tmp_path / "run.lock"
    os.link(outside, path) if planted == "hardlink" else os.mkfifo(path)
    with pytest.raises(UserError, match="hard link|not a regular file"):
        RunLock(path).acquire()
    assert outside.read_text() == "the user's"


def test_a_figure_replaces_its_own_earlier_file_but_not_a_users(tmp_path):
    board = Path(__file__).resolve().parents[1] / "results" / "leaderboards" / "fashion_mnist"
    out = tmp_path / "rank.png"
    args = ["plot", "rank", "--runs", str(board), "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, args).exit_code == 0  # sgbench's own figure: replaced
    out.write_bytes(b"\x89PNG the user's picture")
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "not written by sgbench" in result.output
    assert out.read_bytes() == b"\x89PNG the user's picture"


# -- class 4: readers survive any record, published file or task file -------------------------
def _written_record(tmp_path, change):
    """A committed real record, changed, in tmp_path/runs."""
    import json

    board = Path(__file__).resolve().parents[1] / "results" / "leaderboards" / "fashion_mnist"
    record = json.loads(next(board.glob("*atan*/*.json")).read_text())
    change(record)
    folder = tmp_path / "runs"
    folder.mkdir(exist_ok=True)
    path = folder / f"{record['run_id']}.json"
    path.write_text(json.dumps(record))
    return path


def test_a_record_with_a_mistyped_hash_is_skipped_with_a_line(tmp_path):
    def numeric_hash(r):
        r["method"]["source_sha256"], r["run_id"] = 12345, r["run_id"] + "-bad"
    _written_record(tmp_path, lambda r: None)
    _written_record(tmp_path, numeric_hash)
    result = runner.invoke(app, ["compare", "--runs", str(tmp_path / "runs")])
    assert result.exit_code == 0 and "Traceback" not in result.output
    assert "source_sha256" in result.output


def test_show_of_a_failed_record_without_metrics(tmp_path):
    def failed(r):
        r["status"], r["metrics"] = "failed", {}
    result = runner.invoke(app, ["show", str(_written_record(tmp_path, failed))])
    assert result.exit_code == 0 and "Traceback" not in result.output and "failed" in result.output


def test_a_json_file_that_is_not_a_record_is_one_line(tmp_path):
    (tmp_path / "x.json").write_text('{"hello": 1}')
    result = runner.invoke(app, ["show", str(tmp_path / "x.json")])
    assert result.exit_code == 1 and "not an sgbench run record" in result.output


@pytest.mark.parametrize("results", ["[1, 2]", "[{name: x}]"])
def test_published_numbers_of_the_wrong_shape_are_one_line(tmp_path, results):
    _written_record(tmp_path, lambda r: None)
    (tmp_path / "pub.yaml").write_text(f"results: {results}\n")
    result = runner.invoke(app, ["compare", "--runs", str(tmp_path / "runs"), "--published",
                                 str(tmp_path / "pub.yaml")])
    assert result.exit_code == 1 and "published entry 1" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("case", ["deep chain", "fan-out", "sparse 8 GiB"])
def test_task_files_that_never_end_are_refused(tmp_path, case):
    if case == "deep chain":
        for i in range(40):
            (tmp_path / f"t{i}.yaml").write_text(f"include: t{i + 1}.yaml\n")
        (tmp_path / "t40.yaml").write_text("name: x\n")
    elif case == "fan-out":  # each file includes the next twice: 2^12 reads
        for i in range(12):
            (tmp_path / f"t{i}.yaml").write_text(f"include: [t{i + 1}.yaml, t{i + 1}.yaml]\n")
        (tmp_path / "t12.yaml").write_text("name: x\n")
    else:
        with open(tmp_path / "t0.yaml", "wb") as fh:
            fh.truncate(8 * 2**30)
    result = runner.invoke(app, ["run", "-m", "atan", "-t", str(tmp_path / "t0.yaml"),
                                 "--out", str(tmp_path / "runs")])
    assert result.exit_code in (1, 2) and "Traceback" not in result.output
    assert any(word in result.output for word in ("deep", "more than", "larger than"))


def test_a_damaged_record_in_a_board_stops_the_leaderboard(tmp_path, monkeypatch):
    from sgbench.errors import UserError
    from sgbench.results import leaderboard

    path = _written_record(tmp_path, lambda r: None)
    path.write_text(path.read_text()[:100])  # truncated
    (tmp_path / "board.yaml").write_text(f"name: b\nout: {path.parent}\nmethods: [atan]\n"
                                         "tasks: [digits]\nseeds: [0]\n")
    with pytest.raises(UserError, match="a record cannot be read"):
        leaderboard.board_records(tmp_path / "board.yaml")


# -- class 6: the numba kernel cache heals itself ---------------------------------------------
KERNEL = "from numba import njit\n\n@njit(cache=True)\ndef f(x):\n    return x + 1\n"


def _run_cached_kernel(folder):
    import os
    import subprocess
    import sys

    code = ("import sys; sys.path.insert(0, sys.argv[1]); import sgbench.neuron.kernel_cache as "
            "k; k.harden(); import cached_kernel; print(cached_kernel.f(1))")
    return subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "NUMBA_CACHE_DIR": str(folder / "cache")})


@pytest.mark.parametrize("damage", ["random index", "data cut in half", "fifo index"])
def test_a_damaged_kernel_cache_is_compiled_again_and_said_once(tmp_path, damage):
    import os

    (tmp_path / "cached_kernel.py").write_text(KERNEL)
    assert _run_cached_kernel(tmp_path).stdout.strip() == "2"
    files = {p.suffix: p for p in (tmp_path / "cache").rglob("cached_kernel*")}
    if damage == "random index":
        files[".nbi"].write_bytes(os.urandom(300))
    elif damage == "data cut in half":
        data = files[".nbc"].read_bytes()
        files[".nbc"].write_bytes(data[:len(data) // 2])
    else:
        files[".nbi"].unlink()
        os.mkfifo(files[".nbi"])
    healed = _run_cached_kernel(tmp_path)
    assert healed.returncode == 0 and healed.stdout.strip() == "2"
    assert healed.stderr.count("could not be read") == 1
    again = _run_cached_kernel(tmp_path)  # the entry was written anew
    assert again.stdout.strip() == "2" and "could not be read" not in again.stderr


def test_no_writable_kernel_cache_is_said(monkeypatch, capsys):
    from numba.core import caching

    from sgbench.neuron import kernel_cache

    monkeypatch.setattr(caching.FunctionCache._impl_class, "_locator_classes", [])
    monkeypatch.setattr(kernel_cache, "_said", set())
    assert kernel_cache.usable(kernel_cache.__file__) is False
    assert "no writable folder for the numba kernel cache" in capsys.readouterr().err


# -- class 7: sweeps follow the identity that runs follow -------------------------------------
METHOD = ('"""A plugin for the sweep tests."""\nfrom sgbench.api import FixedSurrogate\n\n\n'
          'class Mine(FixedSurrogate):\n    shape = "atan"\n    defaults = [2.0]\n')


def _sweep(tmp_path, methods, tasks):
    import json

    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps({"name": "s", "methods": methods, "tasks": tasks, "T": [2],
                                "seeds": [0], "epochs": 1, "out": str(tmp_path / "o")}))
    return spec


def _task(folder):
    """A task file of its own: the synthetic task's content, without includes."""
    (folder / "t.yaml").write_text(
        "name: t\nversion: 1\nT: 2\ndata: {dataset: synthetic, n_train: 64, n_test: 32, "
        "n_classes: 4, noise: 0.5, seed: 0}\nmodel: {arch: convnet, channels: [8]}\n"
        "train: {epochs: 1, batch_size: 32}\n")


def _finished_record_of(tmp_path, spec_path):
    """A finished record in the job's folder with the run key `sgbench run` would give it."""
    import json

    from sgbench.sweep.spec import load_spec
    from sgbench.sweep.state import run_key

    job = load_spec(spec_path).jobs[0]
    path = _written_record(tmp_path, lambda r: r.update(run_key=run_key(job)))
    folder = tmp_path / "o" / job.id
    folder.mkdir(parents=True)
    path.rename(folder / path.name)
    return job


@pytest.mark.parametrize("edited", ["method", "task"])
def test_a_sweep_reruns_a_job_whose_method_or_task_file_changed(tmp_path, edited, monkeypatch):
    from sgbench.sweep.spec import load_spec
    from sgbench.sweep.state import job_state

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text(METHOD)
    _task(tmp_path)
    spec = _sweep(tmp_path, ["./mine.py"], ["./t.yaml"])
    job = _finished_record_of(tmp_path, spec)
    assert job_state(tmp_path / "o", job).state == "done"
    changed = tmp_path / ("mine.py" if edited == "method" else "t.yaml")
    text = changed.read_text()
    changed.write_text(text + "# edited\n" if edited == "method" else
                       text.replace("batch_size: 32", "batch_size: 16"))
    state = job_state(tmp_path / "o", load_spec(spec).jobs[0])
    assert state.state == "pending" and "older version" in state.note


def test_one_task_file_spelt_two_ways_is_one_job(tmp_path, monkeypatch):
    from sgbench.sweep.spec import load_spec

    monkeypatch.chdir(tmp_path)
    _task(tmp_path)
    assert len(load_spec(_sweep(tmp_path, ["atan"], ["t.yaml", "./t.yaml"])).jobs) == 1


@pytest.mark.parametrize("age_s, state", [(3600, "pending"), (0, "running")])
def test_an_empty_claim_is_held_only_while_it_may_still_be_written(tmp_path, age_s, state):
    import os
    import time

    from sgbench.sweep.spec import load_spec
    from sgbench.sweep.state import job_state

    spec = load_spec(_sweep(tmp_path, ["atan"], ["digits"]))
    folder = spec.out / spec.jobs[0].id
    folder.mkdir(parents=True)
    mark = folder / "running.json"
    mark.write_bytes(b"")  # the claim was interrupted before its holder was written
    os.utime(mark, (time.time() - age_s, time.time() - age_s))
    assert job_state(spec.out, spec.jobs[0]).state == state


# -- class 10: a record's size is bounded ------------------------------------------------------
@pytest.mark.parametrize("case", ["many snapshots", "one huge snapshot"])
def test_a_record_keeps_under_its_size_bound_and_says_what_it_dropped(tmp_path, case,
                                                                      monkeypatch):
    import copy
    import json

    from sgbench import record as record_module
    from sgbench.record import read_record, write_record

    monkeypatch.setattr(record_module, "MAX_RECORD_BYTES", 2**20)  # 1 MiB here: quick

    path = _written_record(tmp_path, lambda r: None)
    record = json.loads(path.read_text())
    snapshot = record["diagnostics"]["snapshots"][-1]
    layer = copy.deepcopy(snapshot["layers"][0])
    layer["spike_rate"] = [0.1] * 2000  # a long sequence's per-step rates
    if case == "many snapshots":
        big = {**snapshot, "layers": [layer] * 4}
        record["diagnostics"]["snapshots"] = [dict(big, epoch=e) for e in range(1, 61)]
    else:
        record["diagnostics"]["snapshots"] = [{**snapshot, "layers": [layer] * 400}]
    record["run_id"] += "-big"
    (tmp_path / "out").mkdir()
    written = write_record(record, tmp_path / "out")
    assert written.stat().st_size < 2**20
    back = read_record(written)
    assert back["metrics"] == record["metrics"] and back["history"] == record["history"]
    thinned = back["diagnostics"]["thinned"]
    assert thinned["snapshots_dropped"] == (58 if case == "many snapshots" else 0)
    assert thinned["layers_dropped"] == (case == "one huge snapshot")


@pytest.mark.parametrize("misbehaviour", ["swallows the limit", "leaves a thread running"])
def test_a_hook_cannot_outlast_the_time_limit(misbehaviour):
    import threading
    import time

    from sgbench.registry import load_method

    base = load_method("atan")

    class Stubborn(base):
        def on_epoch_start(self, model, epoch, epochs):
            if misbehaviour == "leaves a thread running":
                threading.Thread(target=time.sleep, args=(3600,)).start()  # not a daemon
                return
            while True:
                try:
                    time.sleep(0.01)
                except BaseException:  # noqa: BLE001 - the point: it catches everything
                    pass

    swallows = misbehaviour == "swallows the limit"
    start = time.monotonic()
    ok, detail = _hooks_check(Stubborn, 3 if swallows else 60)  # 60: a loaded machine's room
    if swallows:
        assert not ok and "did not return within 3 s" in detail
        assert time.monotonic() - start < 30
    else:
        assert ok, detail  # the check returned although the thread runs on


@pytest.mark.parametrize("damage", ["parameters the method lacks", "an empty task config"])
def test_profile_of_a_record_that_cannot_rebuild_its_model_is_one_line(tmp_path, damage):
    import json

    out = tmp_path / "runs"
    ran = runner.invoke(app, ["run", "-m", "atan", "-t", "synthetic", "--T", "2", "--epochs",
                              "1", "--out", str(out), "--latency-repeats", "2", "--fd-weights",
                              "0"])
    assert ran.exit_code == 0, ran.output
    path = next(out.glob("*.json"))
    record = json.loads(path.read_text())
    if damage == "an empty task config":
        record["task"]["config"] = {}
    else:
        record["method"]["params"] = {"nosuch": 3}
    path.write_text(json.dumps(record))
    result = runner.invoke(app, ["profile", "--record", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "do not fit" in result.output or "lacks" in result.output
