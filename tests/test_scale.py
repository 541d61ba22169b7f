"""Scaling out: two-process DDP under torchrun, and sweeps (local workers, interrupts, Slurm
through submitit's local executor)."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fixtures import method_file, wait_for
from sgbench.cli import app
from sgbench.distributed import Dist, rank_batch
from sgbench.errors import UsageError
from sgbench.record import load_records
from sgbench.sweep import RUNNING_MARK, Job, job_state, load_spec
from sgbench.train import RunRequest, evaluate, prepare

SGBENCH = [sys.executable, "-m", "sgbench"]


def _spec(folder: Path, **fields) -> Path:
    spec = {"name": "t", "tasks": ["digits"], "T": [2], "epochs": 1, **fields}
    path = folder / "spec.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    return path


def _sweep(spec: Path, *args: str):
    """`sgbench sweep` in this process (its jobs are processes of their own)."""
    return CliRunner().invoke(app, ["sweep", str(spec), *args])


def _ok_records(out: Path) -> list[dict]:
    return [r for r in load_records(out)[0] if r["status"] == "ok"]


def test_two_process_gloo_ddp_run_reduces_metrics_over_ranks(tmp_path):
    out = tmp_path / "runs"
    args = ["run", "--method", "atan", "--task", "digits", "--T", "2", "--epochs", "2",
            "--device", "cpu", "--out", str(out), "--json"]
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", "-m", "sgbench", *args],
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(done.stdout)  # rank 0 alone prints
    assert record["status"] == "ok"
    assert record["distributed"] == {"world_size": 2, "backend": "gloo",
                                     "batch_size_per_rank": 32}
    assert len(list(out.glob("*.json"))) == 1  # rank 0 alone writes
    # The reported test top-1 sums both ranks' shards: it equals one process testing the
    # final checkpoint on the whole test set.
    setup = prepare(RunRequest(method="atan", task="digits", T=2, epochs=2, device="cpu",
                               out_dir=tmp_path / "check"))
    state = torch.load(out / record["checkpoint"], weights_only=False)
    setup.model.load_state_dict(state["model"])
    loss, top1 = evaluate(setup.model, setup.test_loader, setup.loss_fn, 2, "direct",
                          setup.device)
    assert top1 == pytest.approx(record["metrics"]["top1"], abs=1e-9)
    assert loss == pytest.approx(record["metrics"]["test_loss"], rel=1e-6)
    assert record["history"][-1]["train_top1"] is not None


def test_ddp_batch_must_split_over_the_ranks():
    assert rank_batch(64, Dist(1, 4, "gloo")) == 16
    with pytest.raises(UsageError, match="does not split over 3 processes"):
        rank_batch(64, Dist(0, 3, "gloo"))


def test_spec_grid_expands_params_and_rejects_mistakes(tmp_path):
    spec = load_spec(_spec(tmp_path, methods=["atan", "sigmoid"], seeds=[0, 1],
                           params={"atan": {"alpha": [1.0, 3.0]}}))
    assert len(spec.jobs) == 2 * 2 + 2  # atan x 2 alphas x 2 seeds + sigmoid x 2 seeds
    assert len({job.id for job in spec.jobs}) == len(spec.jobs)
    assert {job.params for job in spec.jobs if job.method == "atan"} == {("alpha=1.0",),
                                                                         ("alpha=3.0",)}
    assert spec.out == Path("results/sweeps/t")
    for fields, needle in [({"methods": ["atn"]}, "did you mean"),
                           ({"methods": ["atan"], "colour": 1}, "unknown key"),
                           ({"methods": ["atan"], "T": [0]}, "'T' must be an integer >= 1"),
                           ({"methods": ["atan"], "params": {"atan": {"beta": 1}}},
                            "unknown --param 'beta'"),
                           ({"methods": ["atan"], "tasks": ["cifar11"]}, "cifar11"),
                           ({"methods": ["atan"], "overrides": ["train.lrr=1"]}, "lrr")]:
        done = _sweep(_spec(tmp_path, **fields), "--out", str(tmp_path / "o"))
        assert done.exit_code != 0 and needle in done.output, done.output
        assert isinstance(done.exception, SystemExit)  # a message, not a traceback
    assert not (tmp_path / "o").exists()


def test_sweep_runs_the_grid_then_a_rerun_runs_nothing(tmp_path):
    spec = _spec(tmp_path, methods=["atan", "sigmoid"], seeds=[0, 1])
    out = tmp_path / "sweep"
    first = _sweep(spec, "--out", str(out), "--workers", "2", "--json")
    assert first.exit_code == 0, first.output
    table = json.loads(first.stdout)
    assert table["counts"] == {"done": 4}
    assert len(_ok_records(out)) == 4
    again = _sweep(spec, "--out", str(out))
    assert again.exit_code == 0 and "0 to run" in again.output
    assert len(load_records(out)[0]) == 4  # nothing ran
    status = _sweep(spec, "--out", str(out), "--status", "--json")
    assert json.loads(status.stdout)["counts"] == {"done": 4}


def test_failed_jobs_are_reported_and_do_not_stop_the_sweep(tmp_path):
    method = method_file(tmp_path, "fragile", params="explode: bool = False\n", body="""
        def on_epoch_start(self, model, epoch, epochs):
            if self.params.explode:
                raise RuntimeError("exploded on purpose")
    """)
    spec = _spec(tmp_path, methods=[str(method)], params={str(method): {"explode": [True,
                                                                                   False]}})
    out = tmp_path / "sweep"
    done = _sweep(spec, "--out", str(out), "--json")
    assert done.exit_code == 1
    jobs = {row["params"]: row for row in json.loads(done.stdout)["jobs"]}
    assert all(row["job"].startswith("digits_fragile_T2_") for row in jobs.values())
    assert jobs["explode=true"]["state"] == "failed"
    assert "exploded on purpose" in jobs["explode=true"]["note"]
    assert jobs["explode=false"]["state"] == "done"


def test_an_interrupted_sweep_resumes_and_runs_only_what_is_missing(tmp_path):
    spec_path = _spec(tmp_path, methods=["atan"], seeds=[0, 1, 2], epochs=16)
    spec, out = load_spec(spec_path), tmp_path / "sweep"
    first, second, third = (out / job.id for job in spec.jobs)
    sweep = subprocess.Popen([*SGBENCH, "sweep", str(spec_path), "--out", str(out),
                              "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    # interrupt once the first job is done and the second has trained an epoch
    wait_for(lambda: (second / "log.txt").is_file() and "epoch 2/16" in
             (second / "log.txt").read_text(), "the second job's epoch 2", sweep)
    sweep.send_signal(signal.SIGINT)
    _, stderr = sweep.communicate(timeout=1800)
    assert sweep.returncode == 130, stderr
    assert [job_state(out, job).state for job in spec.jobs] == ["done", "interrupted", "pending"]
    assert list(second.glob("*.ckpt.pt")) and not third.exists()
    done_before = {p.name for p in first.glob("*.json")}

    rerun = _sweep(spec_path, "--out", str(out), "--workers", "1")
    assert rerun.exit_code == 0, rerun.output
    assert "2 to run" in rerun.output
    assert {p.name for p in first.glob("*.json")} == done_before  # the finished job did not run
    resumed = [r for r in load_records(second)[0] if r["status"] == "ok"]
    assert len(resumed) == 1 and resumed[0]["resumed_from"]
    assert [job_state(out, job).state for job in spec.jobs] == ["done"] * 3


def test_status_tells_a_running_job_from_a_dead_one(tmp_path):
    job = Job("atan", "digits", 2, 0, "controlled")
    folder = tmp_path / job.id
    folder.mkdir()
    (folder / RUNNING_MARK).write_text(json.dumps({"pid": os.getpid()}))
    assert job_state(tmp_path, job).state == "running"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (folder / RUNNING_MARK).write_text(json.dumps({"pid": dead.pid}))
    assert job_state(tmp_path, job).state == "pending"


def test_slurm_path_through_submitits_local_executor(tmp_path):
    pytest.importorskip("submitit")
    spec = _spec(tmp_path, methods=["atan"], seeds=[3])
    out = tmp_path / "sweep"
    done = _sweep(spec, "--out", str(out), "--executor", "submitit-local", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["counts"] == {"done": 1}
    records = _ok_records(out)
    assert len(records) == 1 and records[0]["seed"] == 3
    assert list((out / ".submitit").glob("*_result.pkl"))  # it went through submitit


def test_jobs_per_gpu_puts_several_jobs_on_each_gpu(monkeypatch, tmp_path):
    import sgbench.sweep as sweep
    from sgbench.sweep.executors import LocalExecutor

    with pytest.raises(UsageError, match="needs a sweep that may use CUDA"):
        sweep.local_workers("cpu", None, 2)
    monkeypatch.setattr(sweep, "default_workers", lambda device: (2, [0, 1]))
    workers, gpus = sweep.local_workers("cuda", None, 3)
    executor = LocalExecutor(workers, gpus)
    assert workers == 6 and [executor._env(s)["CUDA_VISIBLE_DEVICES"] for s in range(6)] == \
        ["0", "1"] * 3
    bad = _sweep(_spec(tmp_path, methods=["atan"]), "--jobs-per-gpu", "2", "--workers", "2")
    assert bad.exit_code == 2 and "--jobs-per-gpu" in bad.output
