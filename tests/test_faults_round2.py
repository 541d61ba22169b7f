"""Faults, round two, by class: nothing written outside --out, a record never runs code, one run
per key at a time, readers that survive any file, values refused up front, YAML read safely,
plugin surrogates that return garbage. Each case ends in one line and a clean exit code."""
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import fixtures
from sgbench.cli import app

runner = CliRunner()
QUICK = ["-t", "synthetic", "--latency-repeats", "1", "--fd-weights", "0"]


def _one_line_error(result, code=None):
    assert result.exit_code != 0 if code is None else result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.strip().splitlines() if "error" in line]) == 1


@pytest.fixture(scope="module")
def good_record(tmp_path_factory):
    out = tmp_path_factory.mktemp("good")
    assert runner.invoke(app, ["run", "-m", "atan", *QUICK, "--epochs", "1", "--out",
                               str(out)]).exit_code == 0
    return next(out.glob("*.json"))


# -- 1. one path rule ------------------------------------------------------------------------

def test_plot_names_from_a_record_stay_in_the_plots_folder(good_record, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    runs.mkdir()
    record = json.loads(good_record.read_text())
    record["task"]["name"] = "../../../escaped"
    (runs / "r.json").write_text(json.dumps(record))
    result = runner.invoke(app, ["plot", "curves", "--runs", str(runs)])
    assert result.exit_code == 0, result.output
    assert not list(tmp_path.parent.parent.glob("escaped*")) and \
        not list(tmp_path.parent.glob("escaped*"))
    assert [p.parent for p in (tmp_path / "results" / "plots").glob("*.png")] == \
        [tmp_path / "results" / "plots"]


def test_the_csv_log_never_follows_a_planted_link(tmp_path):
    out, target = tmp_path / "out", tmp_path / "outside.txt"
    out.mkdir()
    target.write_text("keep me\n")
    first = runner.invoke(app, ["run", "-m", "atan", *QUICK, "--epochs", "1", "--out",
                                str(tmp_path / "probe"), "--json"])
    key = json.loads(first.stdout)["run_key"]
    (out / f"{key}.epochs.csv").symlink_to(target)
    result = runner.invoke(app, ["run", "-m", "atan", *QUICK, "--epochs", "1", "--out",
                                 str(out), "--log", "csv"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "a link is never followed" in result.output
    assert target.read_text() == "keep me\n"


def test_reference_pin_takes_suite_names_not_paths(tmp_path):
    result = runner.invoke(app, ["reference", "pin", "--suite", str(tmp_path / "evil"),
                                 "--runs", str(tmp_path)])
    _one_line_error(result, 2)
    assert "no reference suite" in result.output and not list(tmp_path.glob("evil*"))


def test_profile_never_imports_the_code_a_record_names(good_record, tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    runs = tmp_path / "runs"
    runs.mkdir()
    record = json.loads(good_record.read_text())
    record["method"]["origin"] = {"kind": "file", "where": str(evil)}
    path = runs / "r.json"
    path.write_text(json.dumps(record))
    (runs / record["checkpoint"]).write_bytes((good_record.parent /
                                                record["checkpoint"]).read_bytes())
    result = runner.invoke(app, ["profile", "--record", str(path)])
    _one_line_error(result, 2)
    assert "a record never runs code" in result.output and not marker.exists()


# -- 3. one finished record per configuration and seed, even at the same time -----------------

def test_a_run_whose_key_is_held_by_a_live_process_stops_and_a_stale_lock_is_taken(tmp_path):
    first = runner.invoke(app, ["run", "-m", "atan", *QUICK, "--epochs", "1", "--out",
                                str(tmp_path / "probe"), "--json"])
    key = json.loads(first.stdout)["run_key"]
    out = tmp_path / "out"
    out.mkdir()
    with open(out / f"{key}.lock", "w") as lock:  # this very process holds it
        lock.write(str(os.getpid()))
        lock.flush()
        fcntl.flock(lock, fcntl.LOCK_EX)
        held = runner.invoke(app, ["run", "-m", "atan", *QUICK, "--epochs", "1", "--out",
                                   str(out)])
    _one_line_error(held, 1)
    assert f"another process (pid {os.getpid()})" in held.output and not list(out.glob("*.json"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (out / f"{key}.lock").write_text(dead)
    taken = runner.invoke(app, ["run", "-m", "atan", *QUICK, "--epochs", "1", "--out", str(out)])
    assert taken.exit_code == 0, taken.output
    assert len(list(out.glob("*.json"))) == 1 and not (out / f"{key}.lock").exists()


def test_two_identical_runs_started_together_write_one_record(tmp_path):
    out = tmp_path / "out"
    args = [sys.executable, "-m", "sgbench", "run", "-m", "atan", *QUICK, "--epochs", "2",
            "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    jobs = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    results = [(job.wait(timeout=600), job.stderr.read()) for job in jobs]
    assert sorted(code for code, _ in results) in ([0, 0], [0, 1])
    finished = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert len([r for r in finished if r["status"] == "ok"]) == 1, results
    assert all("Traceback" not in err for _, err in results)


# -- 4. readers that survive any file ------------------------------------------------------------

def _bad_files(folder: Path, good: Path) -> list[str]:
    record = json.loads(good.read_text())
    cases = {
        "synops_text": {**record, "metrics": {**record["metrics"], "synops": "many"}},
        "history_text": {**record, "history": ["epoch one"]},
        "empty_snapshot": {**record, "diagnostics": {"snapshots": [{}]}},
        "overflow": {**record, "metrics": {**record["metrics"], "top1": 1e308}},
        "seed_negative": {**record, "seed": -1},
    }
    for name, content in cases.items():
        (folder / f"{name}.json").write_text(json.dumps(content))
    (folder / "deep.json").write_text('{"schema": "sgbench.run/2", "x": ' + "[" * 100_000 +
                                      "]" * 100_000 + "}")
    os.mkfifo(folder / "fifo.json")
    (folder / "zero.json").symlink_to("/dev/zero")
    return [*cases, "deep", "fifo", "zero"]


@pytest.mark.parametrize("command", [["compare"], ["check"], ["plot", "curves", "--out", "x.png"],
                                     ["report", "--out", "site"]])
def test_every_reader_skips_malformed_records_and_special_files(good_record, tmp_path, command,
                                                                monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "good.json").write_text(good_record.read_text())
    names = _bad_files(runs, good_record)
    result = runner.invoke(app, [*command, "--runs", str(runs)])
    assert "Traceback" not in result.output and result.exception is None or \
        isinstance(result.exception, SystemExit), result.output
    for name in names:
        assert f"{name}.json" in result.output, (name, result.output)
    assert result.exit_code == (1 if command == ["check"] else 0), result.output


def test_a_garbage_sweep_state_file_is_a_state_not_a_crash(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps({"name": "s", "methods": ["atan"], "tasks": ["synthetic"],
                                "T": [2], "seeds": [0], "epochs": 1, "out": str(tmp_path / "o")}))
    listed = runner.invoke(app, ["sweep", str(spec), "--dry-run", "--json"])
    job = json.loads(listed.stdout)[0]["job"] if listed.stdout.strip().startswith("[") else None
    folder = next(iter((tmp_path / "o").glob("*")), None) if job is None else tmp_path / "o" / job
    folder = folder or (tmp_path / "o" / "x")
    for content in (b"", b"{", b"\xff\xfe garbage", b'{"returncode": "no"}'):
        folder.mkdir(parents=True, exist_ok=True)
        for mark in folder.glob("*.json"):
            mark.unlink()
        (folder / "exit.json").write_bytes(content)
        (folder / "running.json").write_bytes(content)
        status = runner.invoke(app, ["sweep", str(spec), "--status"])
        assert "Traceback" not in status.output and not isinstance(
            status.exception, (KeyError, ValueError, TypeError)), status.output


def test_a_malformed_pinned_file_is_one_line(tmp_path):
    bad = tmp_path / "pinned.json"
    bad.write_text(json.dumps({"suite": {}, "groups": [{"task": "digits"}]}))
    result = runner.invoke(app, ["regress", "--reference", str(bad), "--runs", str(tmp_path)])
    _one_line_error(result)
    assert "not a pinned reference file" in result.output


# -- 6. values checked up front; YAML read safely ------------------------------------------------

@pytest.mark.parametrize("extra,needle", [
    (["--T", "99999"], "--T must lie in [1, 1024]"),
    (["--seed", str(2**32)], "--seed must lie in [0, 4294967295]"),
    (["--eval-T", "99999999999"], "--eval-T values must lie"),
    (["--epochs", "0"], "--epochs must lie"),
    (["-o", "name="], "-o needs key=value with both given"),
    (["-o", "model.channels=[100000]"], "integers in [1, 8192]"),
])
def test_out_of_range_values_are_refused_before_anything_runs(tmp_path, extra, needle):
    out = tmp_path / "runs"
    result = runner.invoke(app, ["run", "-m", "atan", *QUICK, "--out", str(out), *extra])
    _one_line_error(result, 2)
    assert needle in result.output and not list(out.glob("*.json")) if out.exists() else True


def test_a_digits_fraction_outside_0_1_is_refused_before_training(tmp_path):
    result = runner.invoke(app, ["run", "-m", "atan", "-t", "digits", "--out", str(tmp_path),
                                 "-o", "data.test_fraction=1.5"])
    _one_line_error(result, 2)
    assert "test_fraction must lie in [0.01, 0.99]" in result.output


def test_a_300_character_task_name_keeps_its_record(tmp_path):
    out = tmp_path / "runs"
    result = runner.invoke(app, ["run", "-m", "atan", *QUICK, "--epochs", "1", "--out",
                                 str(out), "-o", f"name={'n' * 300}"])
    assert result.exit_code == 0, result.output
    (record,) = out.glob("*.json")
    assert len(record.name) < 200 and json.loads(record.read_text())["task"]["name"] == "n" * 300


@pytest.mark.parametrize("text,needle", [
    ("name: a\nname: b\nversion: 1\n", "key 'name' is given twice"),
    ("a: &x [1, 2]\nb: [*x, *x]\n", "aliases (*name) are not allowed"),
    ("x: " + "[" * 200 + "]" * 200 + "\n", "nested deeper than"),
])
def test_task_yaml_with_duplicates_aliases_or_deep_nesting_is_one_line(tmp_path, text, needle):
    task = tmp_path / "t.yaml"
    task.write_text(text)
    result = runner.invoke(app, ["task", "show", str(task)])
    _one_line_error(result)
    assert needle in result.output


def test_task_yaml_that_is_not_utf8_or_includes_itself_through_dotdot(tmp_path):
    task = tmp_path / "t.yaml"
    task.write_bytes(b"name: \xff\xfe\n")
    result = runner.invoke(app, ["task", "show", str(task)])
    _one_line_error(result)
    assert "not UTF-8" in result.output
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "loop.yaml").write_text("include: ../sub/loop.yaml\nname: x\n")
    result = runner.invoke(app, ["task", "show", str(sub / "loop.yaml")])
    _one_line_error(result)
    assert "include cycle" in result.output


def test_a_task_name_cannot_walk_out_of_the_tasks_folder(tmp_path):
    result = runner.invoke(app, ["task", "show", "../../../tmp/x"])
    _one_line_error(result, 2)
    assert "unknown task" in result.output


# -- plugins ------------------------------------------------------------------------------------

@pytest.mark.parametrize("returned,needle", [
    ("torch.full_like(x, float('nan'))", "non-finite values"),
    ("torch.tensor(1.0)", "must return one value each"),
])
def test_a_plugin_surrogate_returning_garbage_fails_the_run_in_one_line(tmp_path, returned,
                                                                        needle):
    path = tmp_path / "garbage.py"
    path.write_text(f'''
from dataclasses import dataclass
import torch
from sgbench.api import FixedSurrogate, Shape

def grad(x, beta):
    return {returned}

def primitive(x, beta):
    return torch.sigmoid(x)

class Garbage(FixedSurrogate):
    citation = "test"
    shape = Shape("garbage", ("beta",), grad, primitive, lambda beta: (float("-inf"), float("inf")))

    @dataclass
    class Params:
        beta: float = 1.0
''')
    out = tmp_path / "runs"
    result = runner.invoke(app, ["run", "-m", str(path), *QUICK, "--epochs", "1", "--out",
                                 str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output and needle in result.output
    (record,) = out.glob("*.json")
    assert json.loads(record.read_text())["status"] == "failed"


def test_param_problems_that_raise_are_one_line(tmp_path):
    path = fixtures.method_file(tmp_path, "raising", """
        @classmethod
        def param_problems(cls, params):
            return 1 / 0
    """)
    result = runner.invoke(app, ["run", "-m", str(path), *QUICK, "--out", str(tmp_path / "o")])
    _one_line_error(result)
    assert "its param_problems raised ZeroDivisionError" in result.output


def test_records_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "runs"
        assert runner.invoke(app, ["run", "-m", "atan", *QUICK, "--epochs", "1", "--out",
                                   str(out)]).exit_code == 0
        (record,) = out.glob("*.json")
        assert record.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


def test_sweep_jobs_of_two_files_with_one_stem_get_two_folders(tmp_path):
    from sgbench.sweep.spec import Job

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    one = Job(str(tmp_path / "a" / "m.py"), "synthetic", 2, 0, "controlled")
    two = Job(str(tmp_path / "b" / "m.py"), "synthetic", 2, 0, "controlled")
    assert one.id != two.id and one.id.startswith("synthetic_m_T2_s0_controlled_")
    # named methods and tasks keep the folders committed sweeps already have
    assert Job("atan", "digits", 4, 0, "controlled").id == \
        "digits_atan_T4_s0_controlled_" + __import__("hashlib").sha256(
            b"[[], null, []]").hexdigest()[:8]


# -- 5. a suite behaves like one process --------------------------------------------------------

SUITE_SCRIPT = """
import sys
from pathlib import Path
from sgbench.results.reference import run_suite
suite = {"tasks": ["synthetic"], "T": [2], "methods": ["atan", "rect"], "seeds": [0, 1, 2],
         "epochs": 10, "latency_repeats": 1}
def said(done, total, job, result):
    print(f"done {done}/{total} {result['status']}", file=sys.stderr, flush=True)
paths, stopped = run_suite(Path(sys.argv[1]), 2, suite, said)
sys.exit(130 if stopped else 0)
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_to_a_suites_group_stops_it_whole_and_the_same_command_resumes(tmp_path, sig):
    import signal

    out = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    job = subprocess.Popen([sys.executable, "-c", SUITE_SCRIPT, str(out)], env=env,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines = []
    fixtures.wait_for(lambda: "done 1/6" in (lines.append(job.stderr.readline()) or lines[-1]),
                      "the first run", job)
    os.killpg(job.pid, getattr(signal, sig))
    _, stderr = job.communicate(timeout=600)
    assert job.returncode == 130 and "Traceback" not in stderr and "Broken" not in stderr
    stopped = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert len([r for r in stopped if r["status"] == "ok"]) < 6  # queued runs never started
    again = subprocess.run([sys.executable, "-c", SUITE_SCRIPT, str(out)], env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr[-2000:]
    final = [json.loads(p.read_text()) for p in out.glob("*.json")]
    ok = sorted((r["method"]["name"], r["seed"]) for r in final if r["status"] == "ok")
    assert ok == sorted((m, s) for m in ("atan", "rect") for s in range(3))


def test_a_data_folder_missing_one_file_is_named_not_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("SGBENCH_SYSTEM_DATA", "")
    fixtures.mnist(tmp_path, "FashionMNIST")
    folder = next(p.parent for p in tmp_path.rglob("t10k-labels*"))
    next(folder.glob("t10k-labels*")).unlink()
    result = runner.invoke(app, ["run", "-m", "atan", "-t", "fashion_mnist", "--epochs", "1",
                                 "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")])
    _one_line_error(result)
    assert "but not t10k-labels-idx1-ubyte" in result.output


def test_the_csv_log_never_repeats_an_epoch(tmp_path):
    from sgbench.train.logs import CsvLog

    log = CsvLog(tmp_path / "run.epochs.csv")
    for epoch in (1, 2, 3, 2, 3, 4):  # a resume from the checkpoint after epoch 1
        log.epoch({"epoch": epoch, "lr": 0.1, "test_top1": float(epoch)})
    lines = (tmp_path / "run.epochs.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["epoch", "1", "2", "3", "4"]


@pytest.mark.parametrize("args", [["run", "-m", "atan", "--out", ""], ["compare", "--runs="],
                                  ["report", "--out", " "]])
def test_an_empty_path_is_refused_not_read_as_the_current_folder(args):
    result = runner.invoke(app, args)
    _one_line_error(result, 2)
    assert "needs a path, got ''" in result.output


def test_report_never_writes_through_a_planted_link(good_record, tmp_path):
    runs, site, elsewhere = tmp_path / "runs", tmp_path / "site", tmp_path / "elsewhere"
    runs.mkdir(), site.mkdir(), elsewhere.mkdir()
    (runs / "good.json").write_text(good_record.read_text())
    (site / "img").symlink_to(elsewhere)
    result = runner.invoke(app, ["report", "--runs", str(runs), "--out", str(site)])
    _one_line_error(result, 1)
    assert "is a link or a file" in result.output and not list(elsewhere.iterdir())
