"""A job's state, read from its folder: a finished record, a live process or Slurm job, the
last attempt's exit code, a checkpoint, or nothing yet."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..files import pid_alive
from ..record import load_records, read_json
from .spec import Job, Spec

FINISHED = ("ok", "diverged")  # a run that ended with a result
RUNNING_MARK, EXIT_MARK = "running.json", "exit.json"  # a job's process, its last exit code


@dataclass
class JobState:
    job: Job
    state: str  # done | running | submitted | failed | interrupted | partial | pending
    record: dict[str, Any] | None = None
    note: str = ""


STALE_CLAIM_S = 30  # an empty or half-written running mark older than this was interrupted


def _read_mark(mark: Path) -> dict[str, Any]:
    """A state file's content; garbage, an empty or truncated file (or one being written this
    moment) reads as partial, never as an error."""
    try:
        info = read_json(mark, "sweep state file")
    except UserError:
        return {"partial": True}
    return info if isinstance(info, dict) else {"partial": True}


def holder_alive(mark: Path) -> bool:
    """Whether the sweep that took the job, or the job's own process, still runs (a mark being
    written counts as held; an empty or half-written one older than STALE_CLAIM_S does not: its
    claim was interrupted)."""
    info = _read_mark(mark)
    if info.get("partial"):
        try:
            return time.time() - mark.stat().st_mtime < STALE_CLAIM_S
        except OSError:
            return False
    return any(isinstance(info.get(k), int) and pid_alive(info[k]) for k in ("holder", "pid"))


def run_key(job: Job) -> str:
    """The run key `sgbench run` would give the job now: records of another key are another
    version of it (its method or task file edited since), which the sweep runs again."""
    from ..train.setup import RunRequest, run_key as key_of

    return key_of(RunRequest(method=job.method, task=job.task, T=job.T, seed=job.seed,
                             epochs=job.epochs, params=list(job.params),
                             overrides=list(job.overrides), protocol=job.protocol))


def _this_version(job: Job, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from ..train.setup import is_run

    key = run_key(job)
    return [r for r in records if is_run(r, key)]


def job_state(out: Path, job: Job) -> JobState:
    """What the job's folder says of the job as it is now: a finished record, a live process or
    Slurm job, the last attempt's exit code and record, a checkpoint, or nothing yet. Records
    of an older version (a method or task file edited since) are not its results."""
    folder = out / job.id
    every = load_records(folder)[0] if folder.is_dir() else []
    records = sorted(_this_version(job, every), key=lambda r: r["created"]) if every else []
    finished = [r for r in records if r["status"] in FINISHED]
    if finished:
        return JobState(job, "done", finished[-1])
    older = "; a record of an older version (method or task edited since) is kept" if any(
        r["status"] in FINISHED for r in every) else ""
    mark, exit_mark = folder / RUNNING_MARK, folder / EXIT_MARK
    if mark.is_file():
        info = _read_mark(mark)
        if info.get("slurm_job"):
            return JobState(job, "submitted", note=f"slurm job {info['slurm_job']}")
        if holder_alive(mark):
            return JobState(job, "running", note=f"pid {info.get('pid', info.get('holder'))}")
    last = records[-1] if records else None
    code = _read_mark(exit_mark).get("returncode") if exit_mark.is_file() else None
    if exit_mark.is_file() and not isinstance(code, int):
        return JobState(job, "failed", last, f"{exit_mark} is unreadable: delete it to rerun")
    if exit_mark.is_file():
        if code == 130:
            return JobState(job, "interrupted", last, "resumes from its checkpoint")
        error = last.get("error") if last and last["status"] == "failed" else None
        return JobState(job, "failed", last, error or f"exit {code}: see {folder / 'log.txt'}")
    if last:
        return JobState(job, last["status"], last, last.get("error") or "")
    if any(folder.glob("*.ckpt.pt")):
        return JobState(job, "partial", note="checkpoint, no record" + older)
    return JobState(job, "pending", note=older.lstrip("; "))


def states(spec: Spec) -> list[JobState]:
    return [job_state(spec.out, job) for job in spec.jobs]


def resumable(folder: Path) -> bool:
    return any(folder.glob("*.ckpt.pt"))


def plan(spec: Spec) -> tuple[list[JobState], list[JobState]]:
    """(jobs to run, jobs already done or running)."""
    todo, skip = [], []
    for st in states(spec):
        (skip if st.state in ("done", "running", "submitted") else todo).append(st)
    return todo, skip


def job_label(job: Job) -> str:
    """A job as people name it: task, T, the method with the parameters the grid sets, seed."""
    from pathlib import Path

    method = Path(job.method).stem + (f" ({', '.join(job.params)})" if job.params else "")
    paper = " [paper]" if job.protocol == "paper" else ""
    T = f" T={job.T}" if job.T is not None else ""
    return f"{Path(job.task).stem}{T} {method}{paper} seed {job.seed}"


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


def exit_code(all_states: list[JobState]) -> int:
    """130 when jobs were interrupted or never started (rerun to resume), 1 when one failed."""
    tally = counts(all_states)
    if tally.get("interrupted") or tally.get("pending") or tally.get("partial"):
        return 130
    return 1 if tally.get("failed") else 0
