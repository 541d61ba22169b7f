"""How long a sweep's pending jobs will take (``sgbench sweep --dry-run --estimate``).

Each pending job's time comes from what was measured for its configuration (method, task, T,
parameters, protocol, epochs, overrides; any seed): the median wall time of the sweep's
finished jobs of it, else a few training steps timed now (``bench.epoch.step_seconds``) times
the steps of its epochs, plus testing (a forward pass, taken as a third of a training step per
batch) and the method's between-epoch work timed once (Dspike's finite differences, A2SG's
search) at every epoch. The second leaves out what a run does besides (diagnostics, latency),
so it is a lower bound. The sweep's wall time assumes the jobs share the workers
evenly, and is never less than its longest job.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Callable

from .spec import Job
from .state import JobState

RUNNING = ("done", "running", "submitted")
FORWARD_SHARE = 1 / 3  # a test batch's forward against a training step's forward and backward


def configuration(job: Job) -> tuple:
    return (job.method, job.task, job.T, job.params, job.protocol, job.epochs, job.overrides)


@dataclass
class Estimate:
    seconds: float  # one job of this configuration
    source: str  # "runs" (finished jobs of the sweep) or "steps" (timed now)
    jobs: int = 0  # pending jobs of this configuration


def job_seconds(timing: dict[str, Any]) -> float:
    """Training, testing and between-epoch time of a job from one timed step and one timed
    ``adapt`` (``step_seconds``)."""
    per_epoch = timing["step_s"] * (timing["train_batches"]
                                    + FORWARD_SHARE * timing["test_batches"])
    return (per_epoch + timing["adapt_s"]) * timing["epochs"]


def estimate(all_states: list[JobState], workers: int,
             time_steps: Callable[[Job], dict[str, Any]]) -> dict[str, Any]:
    """Seconds per pending configuration and the sweep's wall time on ``workers``."""
    finished: dict[tuple, list[float]] = {}
    for st in all_states:
        wall = ((st.record or {}).get("cost") or {}).get("wall_s")
        if st.state == "done" and isinstance(wall, (int, float)) and math.isfinite(wall):
            finished.setdefault(configuration(st.job), []).append(float(wall))
    found: dict[tuple, Estimate] = {}
    for st in all_states:
        if st.state in RUNNING:
            continue
        key = configuration(st.job)
        if key not in found:
            found[key] = (Estimate(statistics.median(finished[key]), "runs") if key in finished
                          else Estimate(job_seconds(time_steps(st.job)), "steps"))
        found[key].jobs += 1
    total = sum(e.seconds * e.jobs for e in found.values())
    longest = max((e.seconds for e in found.values()), default=0.0)
    return {"configurations": found, "job_seconds": total, "workers": workers,
            "wall_seconds": max(total / max(workers, 1), longest)}


def duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min" \
        if minutes else f"{seconds:.0f} s"
