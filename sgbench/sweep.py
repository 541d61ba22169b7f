"""`sgbench sweep SPEC.yaml`: a grid of runs, N at a time on this machine or on Slurm (submitit).

Every run of the grid is a job with a stable id (its configuration and a digest of its params,
epochs and overrides), its own folder under the sweep's folder, and its own log. A job whose
folder holds a finished record (`ok` or `diverged`) is done and skipped; one with a checkpoint
but no finished record is resumed; a failed job is reported and never stops the others. Each job
is one `sgbench run` process, so a crash stays in its job, and `sgbench compare --runs OUT`
reads every record of the sweep.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .checkpoint import stop_requested
from .errors import UsageError, UserError
from .record import load_records

SPEC_KEYS = {"name", "methods", "tasks", "T", "seeds", "protocols", "params", "epochs",
             "overrides", "device", "out"}
FINISHED = ("ok", "diverged")  # a run that ended with a result
EXECUTORS = ("local", "slurm", "submitit-local")
RUNNING_MARK, EXIT_MARK = "running.json", "exit.json"  # a job's process, its last exit code


@dataclass(frozen=True)
class Job:
    method: str
    task: str
    T: int | None
    seed: int
    protocol: str
    params: tuple[str, ...] = ()
    epochs: int | None = None
    overrides: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        digest = hashlib.sha256(json.dumps([self.params, self.epochs, self.overrides])
                                .encode()).hexdigest()[:8]
        T = "default" if self.T is None else self.T
        task, method = Path(self.task).stem, Path(self.method).stem  # names or file paths
        return f"{task}_{method}_T{T}_s{self.seed}_{self.protocol}_{digest}"

    def argv(self, folder: Path, device: str, resume: bool) -> list[str]:
        """The `sgbench run` arguments of this job."""
        args = ["run", "--method", self.method, "--task", self.task, "--seed", str(self.seed),
                "--protocol", self.protocol, "--device", device, "--out", str(folder)]
        args += ["--T", str(self.T)] if self.T is not None else []
        args += ["--epochs", str(self.epochs)] if self.epochs is not None else []
        for p in self.params:
            args += ["--param", p]
        for o in self.overrides:
            args += ["--override", o]
        return args + (["--resume"] if resume else [])


@dataclass
class Spec:
    name: str
    jobs: list[Job]
    device: str
    out: Path


def _as_list(value: Any, key: str, kind: type) -> list:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, kind) and not isinstance(v, bool) for v in values):
        raise UserError(f"sweep spec: '{key}' must be a {kind.__name__} or a non-empty list of "
                        f"them; got {value!r}")
    return values


def _param_grid(method: str, grid: dict[str, Any]) -> list[tuple[str, ...]]:
    """Every combination of one method's params: {alpha: [2, 4], ...} -> ("alpha=2", ...), ..."""
    if not isinstance(grid, dict):
        raise UserError(f"sweep spec: params.{method} must map parameter names to values")
    keys = sorted(grid)
    values = [grid[k] if isinstance(grid[k], list) else [grid[k]] for k in keys]
    return [tuple(f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
                  for k, v in zip(keys, combo)) for combo in itertools.product(*values)]


def load_spec(path: Path, out: Path | None = None) -> Spec:
    """Read and check a sweep spec; every method, task and param is checked before anything runs."""
    from .config import load_yaml, resolve_task
    from .method import parse_params
    from .registry import load_method

    if not path.is_file():
        raise UserError(f"no sweep spec at '{path}'")
    spec = load_yaml(path, "sweep spec")
    if not isinstance(spec, dict):
        raise UserError(f"sweep spec '{path}' must be a mapping of keys to values")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise UserError(f"sweep spec: unknown key(s) {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(sorted(SPEC_KEYS))}")
    for key in ("methods", "tasks"):
        if key not in spec:
            raise UserError(f"sweep spec: '{key}' is required")
    methods = _as_list(spec["methods"], "methods", str)
    tasks = _as_list(spec["tasks"], "tasks", str)
    Ts = [None] if spec.get("T") is None else _as_list(spec["T"], "T", int)
    seeds = _as_list(spec.get("seeds", 0), "seeds", int)
    protocols = _as_list(spec.get("protocols", "controlled"), "protocols", str)
    overrides = tuple(_as_list(spec["overrides"], "overrides", str)) if spec.get("overrides") \
        else ()
    epochs = spec.get("epochs")
    if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
        raise UserError(f"sweep spec: 'epochs' must be a positive integer; got {epochs!r}")
    if any(T < 1 for T in Ts if T is not None):
        raise UserError(f"sweep spec: every T must be >= 1; got {Ts}")
    bad = [p for p in protocols if p not in ("controlled", "paper")]
    if bad:
        raise UserError(f"sweep spec: protocols are controlled or paper; got {bad}")
    params = spec.get("params") or {}
    if not isinstance(params, dict) or set(params) - set(methods):
        raise UserError("sweep spec: 'params' maps names from 'methods' to their parameter grids")
    grids = {}
    for method in methods:
        cls = load_method(method)
        grids[method] = _param_grid(method, params.get(method, {}))
        for combo in grids[method]:
            parse_params(cls, list(combo))
    for task in tasks:  # unknown tasks and override keys fail here, not in every job
        resolve_task(task, epochs=epochs, overrides=list(overrides))
    jobs = [Job(m, task, T, seed, protocol, combo, epochs, overrides)
            for task in tasks for T in Ts for m in methods for combo in grids[m]
            for protocol in protocols for seed in seeds]
    name = str(spec.get("name") or path.stem)
    return Spec(name, jobs, str(spec.get("device", "auto")),
                out or Path(spec.get("out") or Path("results/sweeps") / name))


# ---- job state, read from the job's folder ----

@dataclass
class JobState:
    job: Job
    state: str  # done | running | submitted | failed | interrupted | partial | pending
    record: dict[str, Any] | None = None
    note: str = ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def job_state(out: Path, job: Job) -> JobState:
    """What the job's folder says: a finished record, a live process or Slurm job, the last
    attempt's exit code and record, a checkpoint, or nothing yet."""
    folder = out / job.id
    records = sorted(load_records(folder)[0], key=lambda r: r["created"]) \
        if folder.is_dir() else []
    finished = [r for r in records if r["status"] in FINISHED]
    if finished:
        return JobState(job, "done", finished[-1])
    mark, exit_mark = folder / RUNNING_MARK, folder / EXIT_MARK
    if mark.is_file():
        info = json.loads(mark.read_text())
        if info.get("slurm_job"):
            return JobState(job, "submitted", note=f"slurm job {info['slurm_job']}")
        if _alive(info["pid"]):
            return JobState(job, "running", note=f"pid {info['pid']}")
    last = records[-1] if records else None
    if exit_mark.is_file():
        code = json.loads(exit_mark.read_text())["returncode"]
        if code == 130:
            return JobState(job, "interrupted", last, "resumes from its checkpoint")
        error = last.get("error") if last and last["status"] == "failed" else None
        return JobState(job, "failed", last, error or f"exit {code}: see {folder / 'log.txt'}")
    if last:
        return JobState(job, last["status"], last, last.get("error") or "")
    if any(folder.glob("*.ckpt.pt")):
        return JobState(job, "partial", note="checkpoint, no record")
    return JobState(job, "pending")


def states(spec: Spec) -> list[JobState]:
    return [job_state(spec.out, job) for job in spec.jobs]


def _resumable(folder: Path) -> bool:
    return any(folder.glob("*.ckpt.pt"))


# ---- the local executor ----

def _sgbench_cmd(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "sgbench", *argv]


def _start(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / EXIT_MARK).unlink(missing_ok=True)


def _finish(folder: Path, returncode: int) -> None:
    (folder / EXIT_MARK).write_text(json.dumps({"returncode": returncode}))
    (folder / RUNNING_MARK).unlink(missing_ok=True)


class LocalExecutor:
    """Runs jobs as `sgbench run` processes, ``workers`` at a time. Each worker owns a slot: a
    GPU (CUDA_VISIBLE_DEVICES) when the sweep uses CUDA, else an equal share of the CPU threads.
    On a stop signal every running job gets one SIGTERM (it finishes its step and writes a
    checkpoint and an `interrupted` record) and the jobs not yet started stay pending."""

    def __init__(self, workers: int, gpus: list[int]):
        self.workers, self.gpus = workers, gpus
        self.stopping = threading.Event()
        self.children: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.slots: queue.Queue[int] = queue.Queue()
        for slot in range(workers):
            self.slots.put(slot)

    def _env(self, slot: int) -> dict[str, str]:
        env = dict(os.environ)
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(self.gpus[slot % len(self.gpus)])
        else:
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.workers))
        return env

    def _run(self, argv: list[str], folder: Path) -> bool:
        """One job in a free slot; False when the sweep was stopped before it started."""
        slot = self.slots.get()
        try:
            with self.lock:
                if self.stopping.is_set():
                    return False
                _start(folder)
                log = open(folder / "log.txt", "a")
                # its own session: a terminal's Ctrl-C reaches the sweep, which stops the jobs
                child = subprocess.Popen(_sgbench_cmd(argv), stdout=log, stderr=subprocess.STDOUT,
                                         env=self._env(slot), start_new_session=True)
                self.children.add(child)
            (folder / RUNNING_MARK).write_text(json.dumps({"pid": child.pid}))
            returncode = child.wait()
            log.close()
            with self.lock:
                self.children.discard(child)
            _finish(folder, returncode)
            return True
        finally:
            self.slots.put(slot)

    def stop(self) -> None:
        with self.lock:
            self.stopping.set()
            for child in self.children:
                child.send_signal(signal.SIGTERM)

    def run(self, tasks: list[tuple[list[str], Path]], on_done: Callable[[int], None]) -> None:
        def work(index: int) -> None:
            if self._run(*tasks[index]):
                on_done(index)

        with ThreadPoolExecutor(self.workers) as pool:
            futures = [pool.submit(work, i) for i in range(len(tasks))]
            while not all(f.done() for f in futures):
                try:
                    time.sleep(0.2)
                except KeyboardInterrupt:  # a second Ctrl-C: the jobs are already stopping
                    pass
                if stop_requested() and not self.stopping.is_set():
                    self.stop()
            for f in futures:
                f.result()


# ---- the Slurm executor (submitit) ----

def run_in_job(argv: list[str], folder: str) -> int:
    """What a Slurm job runs: one `sgbench run`, its output appended to the job's log."""
    _start(Path(folder))
    with open(Path(folder) / "log.txt", "a") as log:
        returncode = subprocess.run(_sgbench_cmd(argv), stdout=log,
                                    stderr=subprocess.STDOUT).returncode
    _finish(Path(folder), returncode)
    return returncode


@dataclass
class SlurmOptions:
    partition: str | None = None
    time_min: int = 240
    gpus: int = 1
    cpus: int = 8
    cluster: str = "slurm"  # "local": submitit's LocalExecutor, to try the path on this machine


def submit_slurm(tasks: list[tuple[list[str], Path]], out: Path, name: str,
                 options: SlurmOptions) -> list[Any]:
    """Submit every task as one Slurm job array; returns submitit's job handles."""
    try:
        import submitit
    except ImportError:
        raise UserError("--executor slurm needs submitit: pip install 'sgbench[slurm]'") from None
    executor = submitit.AutoExecutor(folder=out / ".submitit", cluster=options.cluster)
    params: dict[str, Any] = {"name": f"sgbench-{name}", "timeout_min": options.time_min,
                              "cpus_per_task": options.cpus, "tasks_per_node": 1, "nodes": 1}
    if options.cluster == "slurm":
        params["gpus_per_node"] = options.gpus
        if options.partition:
            params["slurm_partition"] = options.partition
    executor.update_parameters(**params)
    for _, folder in tasks:
        folder.mkdir(parents=True, exist_ok=True)
    handles = executor.map_array(run_in_job, [argv for argv, _ in tasks],
                                 [str(folder) for _, folder in tasks])
    for handle, (_, folder) in zip(handles, tasks):
        (folder / RUNNING_MARK).write_text(json.dumps({"slurm_job": handle.job_id}))
    return handles


def wait_slurm(handles: list[Any], tasks: list[tuple[list[str], Path]],
               on_done: Callable[[int], None]) -> None:
    for index, handle in enumerate(handles):
        try:
            handle.result()
        except Exception as exc:  # the job died outside `sgbench run` (time limit, node)
            with open(tasks[index][1] / "log.txt", "a") as log:
                log.write(f"slurm job failed: {exc}\n")
            _finish(tasks[index][1], -1)
        on_done(index)


# ---- the sweep ----

def plan(spec: Spec) -> tuple[list[JobState], list[JobState]]:
    """(jobs to run, jobs already done or running)."""
    todo, skip = [], []
    for st in states(spec):
        (skip if st.state in ("done", "running", "submitted") else todo).append(st)
    return todo, skip


def default_workers(device: str) -> tuple[int, list[int]]:
    """One worker per visible GPU when the sweep may use CUDA, else one."""
    import torch

    if device != "cpu" and torch.cuda.is_available():
        count = torch.cuda.device_count()
        return count, list(range(count))
    return 1, []


def check_executor(executor: str, workers: int | None) -> None:
    if executor not in EXECUTORS:
        raise UsageError(f"--executor must be one of {', '.join(EXECUTORS)}; got '{executor}'")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be >= 1; got {workers}")


def run_sweep(spec: Spec, todo: list[JobState], executor: str, workers: int | None,
              slurm: SlurmOptions, on_done: Callable[[JobState], None]) -> list[JobState]:
    """Run the jobs ``todo`` (from ``plan``); returns the final state of every job of the spec."""
    check_executor(executor, workers)
    tasks = [(st.job.argv(spec.out / st.job.id, spec.device,
                          _resumable(spec.out / st.job.id)), spec.out / st.job.id)
             for st in todo]

    def done(index: int) -> None:
        on_done(job_state(spec.out, todo[index].job))

    spec.out.mkdir(parents=True, exist_ok=True)
    if executor == "local":
        count, gpus = default_workers(spec.device)
        LocalExecutor(workers or count, gpus).run(tasks, done)
    else:
        if executor == "submitit-local":
            slurm = dataclasses.replace(slurm, cluster="local")
        wait_slurm(submit_slurm(tasks, spec.out, spec.name, slurm), tasks, done)
    return states(spec)


def summary_rows(all_states: list[JobState]) -> list[dict[str, Any]]:
    rows = []
    for st in all_states:
        record = st.record or {}
        top1 = (record.get("metrics") or {}).get("top1")
        wall = (record.get("cost") or {}).get("wall_s")
        rows.append({"job": st.job.id, "method": st.job.method, "task": st.job.task,
                     "T": record.get("T", st.job.T), "seed": st.job.seed,
                     "protocol": st.job.protocol, "params": " ".join(st.job.params),
                     "state": st.state, "top1": top1, "wall_s": wall, "note": st.note})
    return rows


def counts(all_states: list[JobState]) -> dict[str, int]:
    found: dict[str, int] = {}
    for st in all_states:
        found[st.state] = found.get(st.state, 0) + 1
    return found
