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
import shutil
from typing import Callable

from ..errors import UsageError, UserError
from .executors import LocalExecutor, SlurmOptions, submit_slurm, wait_slurm
from .spec import Job, Spec, load_spec
from .state import (EXIT_MARK, FINISHED, RUNNING_MARK, JobState, counts, exit_code, job_label,
                    job_state, plan, resumable, states, summary_rows)

EXECUTORS = ("local", "slurm", "submitit-local")
__all__ = ["EXECUTORS", "EXIT_MARK", "FINISHED", "RUNNING_MARK", "Job", "JobState", "Spec",
           "SlurmOptions", "check_executor", "counts", "exit_code", "job_label", "job_state",
           "load_spec", "plan", "run_sweep", "states", "summary_rows"]


def default_workers(device: str) -> tuple[int, list[int]]:
    """One worker per visible GPU when the sweep may use CUDA, else one."""
    import torch

    if device != "cpu" and torch.cuda.is_available():
        count = torch.cuda.device_count()
        return count, list(range(count))
    return 1, []


def check_executor(executor: str, workers: int | None, jobs_per_gpu: int = 1) -> None:
    if executor not in EXECUTORS:
        raise UsageError(f"--executor must be one of {', '.join(EXECUTORS)}; got '{executor}'")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be >= 1; got {workers}")
    if jobs_per_gpu < 1 or (jobs_per_gpu > 1 and (workers is not None or executor != "local")):
        raise UsageError(f"--jobs-per-gpu must be >= 1, with the local executor and without "
                         f"--workers; got {jobs_per_gpu}")
    if executor == "slurm" and shutil.which("srun") is None:
        raise UserError("--executor slurm needs a Slurm cluster (no `srun` on this machine); "
                        "run locally, or try the path with --executor submitit-local")


def local_workers(device: str, workers: int | None, jobs_per_gpu: int) -> tuple[int, list[int]]:
    """How many local jobs run at once, and on which GPUs: ``workers``, else ``jobs_per_gpu``
    per visible GPU (a CUDA sweep), else one."""
    count, gpus = default_workers(device)
    if jobs_per_gpu > 1 and not gpus:
        raise UsageError("--jobs-per-gpu needs a sweep that may use CUDA and a visible GPU")
    return workers or count * jobs_per_gpu, gpus


def run_sweep(spec: Spec, todo: list[JobState], executor: str, workers: int | None,
              slurm: SlurmOptions, on_done: Callable[[JobState], None],
              jobs_per_gpu: int = 1) -> list[JobState]:
    """Run the jobs ``todo`` (from ``plan``); returns the final state of every job of the spec."""
    check_executor(executor, workers, jobs_per_gpu)
    tasks = [(st.job.argv(spec.out / st.job.id, spec.device,
                          resumable(spec.out / st.job.id)), spec.out / st.job.id)
             for st in todo]

    def done(index: int) -> None:
        on_done(job_state(spec.out, todo[index].job))

    spec.out.mkdir(parents=True, exist_ok=True)
    if executor == "local":
        LocalExecutor(*local_workers(spec.device, workers, jobs_per_gpu)).run(tasks, done)
    else:
        if executor == "submitit-local":
            slurm = dataclasses.replace(slurm, cluster="local")
        wait_slurm(submit_slurm(tasks, spec.out, spec.name, slurm), tasks, done)
    return states(spec)
