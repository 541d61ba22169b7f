"""Every promise under faults: bad inputs end in one line and the right exit code, nothing escapes
--out, records are strict JSON and unique per configuration and seed, readers skip what does not
conform, and a stop signal at any point leaves a record (and a checkpoint to resume from)."""
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import fixtures
from sgbench.cli import app

runner = CliRunner()
SGBENCH = [sys.executable, "-m", "sgbench"]
QUICK = ["-t", "synthetic", "--latency-repeats", "1"]


def _tree(root: Path, skip: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in root.rglob("*")
            if p.is_file() and skip not in p.parents}


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


TASK = """
    include: {include}
    name: {name}
    version: 1
    data: {{dataset: synthetic, n_train: 64, n_test: 32}}
    model: {{arch: convnet, channels: [4]}}
    train: {{epochs: {epochs}}}
"""


def _task(folder: Path, include="_cpu.yaml", name="mine", epochs="1", file="task.yaml"):
    import sgbench.tasks

    base = Path(sgbench.tasks.__file__).parent / "_cpu.yaml"
    (folder / "_cpu.yaml").write_text(base.read_text())
    return str(_write(folder, file, TASK.format(include=include, name=name, epochs=epochs)))


def _spec(folder: Path, **fields) -> str:
    spec = {"name": "s", "methods": ["atan"], "tasks": ["synthetic"], "epochs": 1, **fields}
    return str(_write(folder, "spec.yaml", json.dumps(spec)))


PLUGIN_NO_RULE = """
    from sgbench.api import Method
    class NoRule(Method):
        citation = "test"
"""
PLUGIN_PLAIN_PARAMS = """
    from sgbench.api import FixedSurrogate
    class Plain(FixedSurrogate):
        citation = "test"
        shape = "atan"
        class Params:
            alpha = 2.0
"""

# (id, arguments (a function of the temporary folder and --out), exit code, words in the message)
CASES = [
    ("T not an integer", lambda d, o: ["run", "-m", "atan", *QUICK, "--T", "2.5"], 2,
     "valid integer"),
    ("negative seed", lambda d, o: ["run", "-m", "atan", *QUICK, "--seed", "-1", "--out", o], 2,
     "--seed"),
    ("batch size 0", lambda d, o: ["run", "-m", "atan", *QUICK, "-o", "train.batch_size=0",
                                   "--out", o], 2, "batch_size"),
    ("string for a number", lambda d, o: ["run", "-m", "atan", *QUICK, "-o", "train.lr=abc",
                                          "--out", o], 2, "train.lr"),
    ("negative channels", lambda d, o: ["run", "-m", "atan", *QUICK, "-o",
                                        "model.channels=[-4]", "--out", o], 2, "channels"),
    ("nan parameter", lambda d, o: ["run", "-m", "atan", *QUICK, "--param", "alpha=.nan",
                                    "--out", o], 2, "finite"),
    ("zero width", lambda d, o: ["run", "-m", "rect", *QUICK, "--param", "width=0", "--out", o],
     2, "width"),
    ("nan energy", lambda d, o: ["run", "-m", "atan", *QUICK, "--energy", "nan,-1", "--out", o],
     2, "--energy"),
    ("include 42", lambda d, o: ["run", "-m", "atan", "-t", _task(d, include="42"),
                                 "--out", o], 2, "include"),
    ("missing include", lambda d, o: ["run", "-m", "atan", "-t", _task(d, include="gone.yaml"),
                                      "--out", o], 2, "gone.yaml"),
    ("include cycle", lambda d, o: ["run", "-m", "atan", "-t", _task(
        d, include="task.yaml"), "--out", o], 2, "include cycle"),
    ("epochs as a string", lambda d, o: ["run", "-m", "atan", "-t", _task(d, epochs="three"),
                                         "--out", o], 2, "train.epochs"),
    ("plugin without a rule", lambda d, o: ["run", "-m", str(_write(d, "norule.py",
                                                                     PLUGIN_NO_RULE)),
                                            *QUICK, "--out", o], 2, "layer_rule"),
    ("plugin Params not a dataclass", lambda d, o: ["run", "-m", str(_write(
        d, "plain.py", PLUGIN_PLAIN_PARAMS)), *QUICK, "--out", o], 1, "dataclass"),
    ("plugin exits on import", lambda d, o: ["run", "-m", str(_write(
        d, "quits.py", "import sys\nsys.exit(4)\n")), *QUICK, "--out", o], 1, "SystemExit"),
    ("huge bench", lambda d, o: ["bench", "neuron", "--neurons", "100000000000"], 2, "GiB"),
    ("no bench methods", lambda d, o: ["bench", "train", "--methods", ","], 2, "--methods"),
    ("plot into a folder", lambda d, o: ["plot", "pareto", "--runs", str(d), "--out", str(d)],
     2, "folder"),
    ("unknown command", lambda d, o: ["trian"], 2, "No such command"),
    ("unknown option", lambda d, o: ["compare", "--colums", "top1"], 2, "No such option"),
    ("sweep epochs true", lambda d, o: ["sweep", _spec(d, epochs=True), "--out", o], 2,
     "epochs"),
    ("sweep device gpu", lambda d, o: ["sweep", _spec(d, device="gpu"), "--out", o], 2,
     "device"),
    ("sweep negative seed", lambda d, o: ["sweep", _spec(d, seeds=[-1]), "--out", o], 2,
     "seeds"),
    ("sweep empty grid", lambda d, o: ["sweep", _spec(d, params={"atan": {"alpha": []}}),
                                       "--out", o], 2, "no jobs"),
]


@pytest.mark.parametrize("name,args,code,words", CASES, ids=[c[0] for c in CASES])
def test_a_bad_input_ends_in_one_line_and_changes_nothing_outside_out(tmp_path, name, args,
                                                                      code, words):
    out = tmp_path / "out"
    arguments = args(tmp_path, str(out))
    before = _tree(tmp_path, out)
    result = runner.invoke(app, arguments)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and words in errors[0], result.output
    assert _tree(tmp_path, out) == before
    assert not out.exists() or not any(out.rglob("*.json"))


def test_a_task_named_to_escape_stays_inside_out(tmp_path):
    out = tmp_path / "deep" / "out"
    for args in (["-t", _task(tmp_path, name="../../escaped")],
                 ["-t", "synthetic", "-o", "name=../../x"]):
        result = runner.invoke(app, ["run", "-m", "atan", *args, "--latency-repeats", "1",
                                     "--out", str(out)])
        assert result.exit_code == 0, result.output
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".json", ".pt")]
    assert files and all(out in p.parents for p in files if "task" not in p.name)


def test_a_sweep_named_to_escape_stays_in_its_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = _spec(tmp_path, name="../../..")
    result = runner.invoke(app, ["sweep", spec, "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    folder = Path(json.loads(result.stdout)["out"])
    assert (tmp_path / folder).resolve().is_relative_to(tmp_path / "results" / "sweeps")


def test_records_are_strict_json_with_non_finite_values_flagged(tmp_path):
    from sgbench.record import dumps

    text = dumps({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": 2.0}})
    assert json.loads(text) == {"a": None, "b": [1.0, None], "c": {"d": 2.0},
                                "nonfinite": ["a", "b[1]"]}
    assert "NaN" not in text and "Infinity" not in text


def test_a_record_that_cannot_be_written_goes_to_the_fallback_named(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "out"
    method = fixtures.method_file(tmp_path, "vanishing", f"""
        def extend_to_T(self, model, T):  # after training, before the record is written
            import os
            from pathlib import Path
            out = Path({str(out)!r})
            if out.is_dir():
                os.rename(out, out.with_name("moved"))  # the folder is gone, a file in its place
                out.write_text("in the way")
            return "none needed"
    """)
    result = runner.invoke(app, ["run", "-m", str(method), *QUICK, "--epochs", "1", "--out",
                                 str(out), "--eval-T", "1", "--json"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    saved = list((tmp_path / "cache" / "sgbench" / "unsaved-records").glob("*.json"))
    assert len(saved) == 1 and str(saved[0]) in result.output
    assert json.loads(saved[0].read_text())["status"] == "ok"
    assert json.loads(result.stdout.split("\nerror")[0])["run_id"]


def _bad_records(folder: Path, good: Path) -> None:
    record = json.loads(good.read_text())
    (folder / "latin1.json").write_bytes('{"schema": "sgbench.run/2", "x": "\xe9"}'.encode("latin-1"))
    (folder / "no_metrics.json").write_text(json.dumps({k: v for k, v in record.items()
                                                        if k != "metrics"}))
    (folder / "task_null.json").write_text(json.dumps({**record, "task": None}))
    (folder / "nan.json").write_text(json.dumps(record).replace('"energy_uj": ',
                                                                '"energy_uj": NaN, "x": ', 1))


def test_one_bad_file_breaks_no_reader_and_check_names_it(tmp_path):
    runs = tmp_path / "runs"
    done = runner.invoke(app, ["run", "-m", "atan", *QUICK, "--out", str(runs)])
    assert done.exit_code == 0, done.output
    _bad_records(runs, next(runs.glob("*.json")))
    for args in (["compare", "--runs", str(runs)], ["plot", "curves", "--runs", str(runs),
                                                      "--out", str(tmp_path / "c.png")],
                 ["report", "--runs", str(runs), "--out", str(tmp_path / "site")],
                 ["regress", "--runs", str(runs)]):
        result = runner.invoke(app, args)
        assert "Traceback" not in result.output and result.exit_code in (0, 1), result.output
        assert result.output.count("skipped") == 4, (args, result.output)
    check = runner.invoke(app, ["check", "--runs", str(runs)])
    assert check.exit_code == 1 and check.output.count("problem") >= 4
    show = runner.invoke(app, ["show", str(runs / "no_metrics.json")])
    assert show.exit_code == 1 and "missing 'metrics'" in show.output


def test_one_finished_record_per_configuration_and_seed(tmp_path):
    out = tmp_path / "runs"
    args = ["run", "-m", "atan", *QUICK, "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    for extra in ([], ["--resume"]):
        again = runner.invoke(app, args + extra)
        assert again.exit_code == 0 and "already finished" in again.output
    assert len(list(out.glob("*.json"))) == 1


def test_a_sweep_runs_a_repeated_job_once_and_compare_counts_a_seed_once(tmp_path):
    from sgbench.results.compare import summarize
    from sgbench.sweep import load_spec

    spec = load_spec(Path(_spec(tmp_path, methods=["atan", "atan"], seeds=[0, 0, 1])))
    assert len(spec.jobs) == 2
    record = {"task": {"name": "t", "version": 1, "sha256": "x", "config": {}},
              "protocol": "controlled",
              "T": 2, "status": "ok", "method": {"name": "atan", "params": {}},
              "metrics": {"top1": 90.0}, "cost": {}}
    records = [{**record, "seed": s, "created": c} for s, c in ((0, "1"), (0, "2"), (1, "3"))]
    row = summarize(records)[0]
    assert row["n"] == 2 and row["duplicates"] == 1 and row["seeds"] == [0, 1]


def test_two_sweeps_at_once_run_each_job_once(tmp_path):
    spec = _spec(tmp_path, seeds=[0, 1, 2, 3])
    out = tmp_path / "out"
    sweeps = [subprocess.Popen([*SGBENCH, "sweep", spec, "--out", str(out), "--workers", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    for sweep in sweeps:
        _, stderr = sweep.communicate(timeout=1800)
        assert sweep.returncode == 0, stderr
    from sgbench.record import load_records
    records = load_records(out)[0]
    assert sorted(r["seed"] for r in records) == [0, 1, 2, 3]


def test_a_corrupt_or_foreign_checkpoint_is_refused_before_resuming(tmp_path):
    out = tmp_path / "runs"
    args = ["run", "-m", "atan", *QUICK, "--epochs", "2", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    ckpt = next(out.glob("*.ckpt.pt"))
    for record in out.glob("*.json"):
        record.unlink()
    other = tmp_path / "other"
    assert runner.invoke(app, args[:-2] + ["--epochs", "3", "--out", str(other)]).exit_code == 0
    foreign = next(other.glob("*.ckpt.pt")).read_bytes()
    for damage, words in ((b"garbage", "cannot read checkpoint"),
                          (foreign, "belongs to another run (its config_sha256 differs)")):
        ckpt.write_bytes(damage)
        result = runner.invoke(app, args + ["--resume"])
        assert result.exit_code == 1 and words in result.output, result.output
        assert "Traceback" not in result.output


def test_profile_reads_the_checkpoint_a_run_writes(tmp_path):
    out = tmp_path / "runs"
    assert runner.invoke(app, ["run", "-m", "atan", *QUICK, "--out", str(out)]).exit_code == 0
    result = runner.invoke(app, ["profile", "-t", "synthetic", "-m", "atan", "--checkpoint",
                                 str(next(out.glob("*.ckpt.pt"))), "--repeats", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["weights"].endswith(".ckpt.pt")


def test_a_second_signal_while_the_record_is_written_waits_for_it():
    from sgbench import checkpoint

    with checkpoint.graceful_stop():
        os.kill(os.getpid(), signal.SIGINT)  # the first: stop after this step
        with pytest.raises(KeyboardInterrupt):
            with checkpoint.shielded():
                os.kill(os.getpid(), signal.SIGINT)  # the second, while writing
                written = True  # reached: the second signal did not interrupt the block
        assert written


def _run_args(data: Path, out: Path, epochs: int, *extra: str) -> list[str]:
    return [*SGBENCH, "run", "-m", "atan", "-t", "nmnist", "--data-dir", str(data), "--out",
            str(out), "--epochs", str(epochs), "-o", "train.workers=2", "-o",
            "train.batch_size=2", "--latency-repeats", "1", "--json", *extra]


@pytest.mark.parametrize("when", ["epoch", "measurement"])
def test_sigterm_to_the_process_group_leaves_a_record_and_resume_matches(tmp_path, when):
    """A scheduler's pre-emption: SIGTERM to the whole group, loader workers included."""
    fixtures.events(tmp_path / "data" / "nmnist", 34, ["0", "1"], 3)
    env = {**os.environ, "SGBENCH_SYSTEM_DATA": "", "OMP_NUM_THREADS": "1"}
    straight = subprocess.run(_run_args(tmp_path / "data", tmp_path / "straight", 6),
                              capture_output=True, text=True, env=env, timeout=1800)
    assert straight.returncode == 0, straight.stderr[-2000:]
    out = tmp_path / "runs"
    repeats = ["--latency-repeats", "100000"] if when == "measurement" else []
    job = subprocess.Popen(_run_args(tmp_path / "data", out, 6, *repeats), env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    line = "epoch 6/6" if when == "measurement" else "epoch 2/6"
    log = []
    fixtures.wait_for(lambda: _read_line(job, log, line), line, job)
    os.killpg(job.pid, signal.SIGTERM)
    stdout, stderr = job.communicate(timeout=1800)
    assert job.returncode == 130 and "Traceback" not in stderr, stderr[-2000:]
    record = json.loads(stdout)
    assert record["status"] == "interrupted" and list(out.glob("*.ckpt.pt"))
    assert record["data"]["loader"] == {"kind": "dataloader", "workers": 2}
    assert len(record["history"]) == 6 if when == "measurement" else len(record["history"]) < 6
    resumed = subprocess.run(_run_args(tmp_path / "data", out, 6, "--resume"),
                             capture_output=True, text=True, env=env, timeout=1800)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected = json.loads(straight.stdout)
    assert json.loads(resumed.stdout)["history"] == [
        {**h, "epoch_time_s": h2["epoch_time_s"]} for h, h2 in zip(
            expected["history"], json.loads(resumed.stdout)["history"])]


def _read_line(process, seen: list[str], wanted: str) -> bool:
    line = process.stderr.readline()
    seen.append(line)
    return wanted in line
