"""`sgbench sweep SPEC.yaml`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import UsageError
from .common import Json, err, out, print_json, set_threads, user_errors


@user_errors
def sweep_cmd(
    spec_path: Path = typer.Argument(..., metavar="SPEC.yaml", help="The sweep's grid."),
    status: bool = typer.Option(False, "--status", help="Show each job's state; run nothing."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the jobs that would run."),
    estimate: bool = typer.Option(False, "--estimate", help="With --dry-run: how long the "
                                  "pending jobs take, from the sweep's finished runs of each "
                                  "configuration, else from a few training steps timed now."),
    executor: str = typer.Option("local", "--executor", help="local, slurm or submitit-local "
                                 "(the Slurm path through submitit's LocalExecutor)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Local jobs at a time "
                                          "(default: one per GPU, else 1)."),
    jobs_per_gpu: int = typer.Option(1, "--jobs-per-gpu", help="Local jobs sharing each GPU "
                                     "(small tasks leave a GPU mostly idle)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="The sweep's folder (default: "
                                           "the spec's out, else results/sweeps/NAME)."),
    partition: Optional[str] = typer.Option(None, "--partition", help="Slurm partition."),
    time_min: int = typer.Option(240, "--time-min", help="Slurm time limit per job, minutes."),
    gpus: int = typer.Option(1, "--gpus", help="GPUs per Slurm job."),
    cpus: int = typer.Option(8, "--cpus", help="CPUs per Slurm job."),
    json_out: Json = False,
) -> None:
    """Run a grid of methods x tasks x T x seeds x params x protocols; finished jobs are
    skipped, interrupted ones resume, failures are reported and the rest go on."""
    from ..checkpoint import graceful_stop
    from ..files import ensure_writable
    from ..sweep import (SlurmOptions, check_executor, exit_code, job_label, load_spec, plan,
                         run_sweep, states)

    spec = load_spec(spec_path, out_dir)
    check_executor(executor, workers, jobs_per_gpu)
    if estimate and not dry_run:
        raise UsageError("--estimate goes with --dry-run")
    if status or dry_run:
        shown = plan(spec)[0] if dry_run else states(spec)
        times = _estimate(spec, workers) if estimate else None
        _sweep_table(spec, shown, json_out, "would run" if dry_run else "status", times)
        return
    ensure_writable(spec.out)  # a file, a special folder or no room: one line, before any job
    todo, skipped = plan(spec)
    err.print(f"sweep {spec.name}: {len(spec.jobs)} jobs, {len(skipped)} done or running, "
              f"{len(todo)} to run, in {spec.out}", highlight=False, soft_wrap=True)
    finished = [0]

    def report(state) -> None:
        finished[0] += 1
        top1 = (state.record or {}).get("metrics", {}).get("top1")
        result = f"top-1 {top1:.2f}%" if top1 is not None else state.note
        err.print(f"[{finished[0]}/{len(todo)}] {state.state:<11} {job_label(state.job)}  "
                  f"{result}", highlight=False, soft_wrap=True)

    with graceful_stop():
        final = run_sweep(spec, todo, executor, workers,
                          SlurmOptions(partition, time_min, gpus, cpus), report, jobs_per_gpu)
    _sweep_table(spec, final, json_out, "summary")
    code = exit_code(final)
    if code:
        raise typer.Exit(code)


def _cell(column: str, value) -> str:
    if value is None:
        return "task's" if column == "T" else "—"
    return f"{value:.2f}" if column == "top1" else f"{value:.1f}" if column == "wall_s" \
        else str(value)


def _estimate(spec, workers: Optional[int]) -> dict:
    """The pending jobs' time (sweep/estimate.py), steps timed on the spec's device, one
    thread (as each local job runs)."""
    from ..bench.epoch import step_seconds
    from ..sweep import local_workers, states
    from ..sweep.estimate import estimate
    from ..train import pick_device

    device = str(pick_device(spec.device))
    set_threads(1)

    def time_steps(job):
        err.print(f"timing {job.method} on {job.task} ...", highlight=False)
        return step_seconds(job.method, job.task, job.T, job.params, job.protocol, job.epochs,
                            job.overrides, device)
    return estimate(states(spec), local_workers(spec.device, workers, 1)[0], time_steps)


def _estimate_table(times: dict) -> None:
    from ..sweep.estimate import duration

    table = Table("method", "task", "T", "params", "jobs", "each", "from",
                  title="time of the pending jobs")
    for (method, task, T, params, *_), e in times["configurations"].items():
        table.add_row(method, task, "task's" if T is None else str(T), " ".join(params),
                      str(e.jobs), duration(e.seconds),
                      "finished runs" if e.source == "runs" else "steps timed now")
    out.print(table)
    out.print(f"{duration(times['job_seconds'])} of job time: about "
              f"{duration(times['wall_seconds'])} on {times['workers']} worker(s). Timed steps "
              "count training, testing and the method's between-epoch work (not diagnostics "
              "or latency): a lower bound.",
              highlight=False)


def _estimate_json(times: dict) -> dict:
    return {"job_seconds": times["job_seconds"], "wall_seconds": times["wall_seconds"],
            "workers": times["workers"],
            "configurations": [{"method": k[0], "task": k[1], "T": k[2], "params": list(k[3]),
                                "jobs": e.jobs, "seconds_each": e.seconds, "from": e.source}
                               for k, e in times["configurations"].items()]}


def _sweep_table(spec, shown, json_out: bool, title: str, times: dict | None = None) -> None:
    from ..sweep import counts, summary_rows

    rows = summary_rows(shown)
    if json_out:
        print_json({"sweep": spec.name, "out": str(spec.out), "counts": counts(shown),
                    "jobs": rows, **({"estimate": _estimate_json(times)} if times else {})})
        return
    columns = ["method", "task", "T", "seed", "protocol", "params", "state", "top1", "wall_s",
               "note"]
    shown_if = {"protocol": len({row["protocol"] for row in rows}) > 1,
                "params": any(row["params"] for row in rows),
                "note": any(row["note"] for row in rows)}
    columns = [c for c in columns if shown_if.get(c, True)]
    table = Table(*columns, title=f"sweep {spec.name}: {title}")
    for row in rows:
        table.add_row(*(_cell(c, row[c]) for c in columns))
    out.print(table)
    tally = ", ".join(f"{n} {state}" for state, n in sorted(counts(shown).items()))
    out.print(f"{len(shown)} jobs: {tally or 'none'}  ({spec.out})", highlight=False)
    if times:
        _estimate_table(times)


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep_cmd)
