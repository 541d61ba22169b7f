"""`sgbench run`, `sgbench profile` and `sgbench env`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import UsageError
from .common import (DataDir, Device, Json, Overrides, Params, Threads, err, out, parse_ints,
                     print_json, user_errors)


class ProgressReporter:
    """A rich progress bar on a terminal, one plain line per epoch otherwise (both on stderr)."""

    def __init__(self, label: str):
        self.label, self.bar, self.task, self.epochs = label, None, None, 0

    def start(self, epochs: int) -> None:
        self.epochs = epochs
        if err.is_terminal:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
                                console=err, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=epochs, info="")

    def epoch(self, entry: dict[str, Any]) -> None:
        test = entry.get("test_top1")
        info = f"train loss {entry['train_loss']:.4f}  test top-1 {test:.2f}%" \
            if test is not None else "diverged (non-finite loss)"
        if self.bar is not None:
            self.bar.update(self.task, advance=1, info=info)
        else:
            err.print(f"{self.label} epoch {entry['epoch']}/{self.epochs}  {info}  "
                      f"({entry['epoch_time_s']:.1f}s)", highlight=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@user_errors
def run_cmd(
    method: str = typer.Option(..., "--method", "-m", help="Method name or path to a .py file."),
    task: str = typer.Option(..., "--task", "-t", help="Task name or path to a .yaml file."),
    T: Optional[int] = typer.Option(None, "--T", help="Timesteps (default: the task's)."),
    seed: int = typer.Option(0, "--seed"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Override train.epochs."),
    param: Params = [],
    override: Overrides = [],
    protocol: str = typer.Option("controlled", "--protocol", help="controlled or paper."),
    device: Device = "auto",
    out_dir: Path = typer.Option(Path("results/runs"), "--out", help="Folder for the record."),
    json_out: Json = False,
    diag_every: int = typer.Option(0, "--diag-every", help="Gradient diagnostics every N epochs "
                                   "(always after the last)."),
    data_dir: DataDir = None,
    download: bool = typer.Option(False, "--download", help="Let the dataset library download "
                                  "missing data where it can."),
    neuron_backend: Optional[str] = typer.Option(None, "--neuron-backend",
                                                 help="auto, torch or cupy (default: the task's)."),
    require_fused: bool = typer.Option(False, "--require-fused", help="Fail instead of running "
                                       "the torch reference where the fused kernels cannot run."),
    eval_T: str = typer.Option("", "--eval-T", help="Also test at these T, e.g. 1,2,8."),
    energy: str = typer.Option("45nm-fp32", "--energy", help="45nm-fp32, 45nm-fp16, 45nm-int8 "
                               "or E_MAC,E_AC in pJ."),
    latency_repeats: int = typer.Option(30, "--latency-repeats", help="Timed passes per "
                                        "latency figure."),
    resume: bool = typer.Option(False, "--resume", help="Continue this configuration from its "
                                "last checkpoint in --out."),
    threads: Threads = None,
) -> None:
    """Train and measure one method on one task; write its record. Under `torchrun
    --nproc_per_node N -m sgbench run ...` it trains data-parallel (DDP) on N processes."""
    from ..record import RecordNotWritten
    from ..train import AlreadyFinished, RunRequest, run

    request = RunRequest(method=method, task=task, T=T, seed=seed, epochs=epochs, params=param,
                         overrides=override, protocol=protocol, device=device, out_dir=out_dir,
                         diag_every=diag_every, data_dir=data_dir, download=download,
                         neuron_backend=neuron_backend, require_fused=require_fused,
                         eval_T=parse_ints(eval_T, "--eval-T"), energy=energy,
                         latency_repeats=latency_repeats, resume=resume, threads=threads)
    try:
        record, path = run(request, ProgressReporter(f"{Path(method).stem} on {task}"))
    except AlreadyFinished as done:
        if json_out:
            print_json(done.record)
        err.print(f"already finished: {done.path} (one finished record per configuration and "
                  f"seed in a folder; --out another folder to run it again)", highlight=False,
                  soft_wrap=True)
        return
    except RecordNotWritten as failed:
        if json_out:
            print_json(failed.record)
        raise
    if path is not None:  # under torchrun, rank 0 alone reports
        _report_run(record, path, json_out)
    if record["status"] == "interrupted":
        raise typer.Exit(130)


def _report_run(record: dict, path: Path, json_out: bool) -> None:
    if json_out:
        print_json(record)
    else:
        m = record["metrics"]
        best = f" (best {m['top1_best']:.2f}% at epoch {m['top1_best_epoch']})" \
            if m["top1"] is not None else ""
        top1 = f"{m['top1']:.2f}%" if m["top1"] is not None else "—"
        world = record.get("distributed", {}).get("world_size", 1)
        ranks = f"  {world} processes" if world > 1 else ""
        out.print(f"status {record['status']}  top-1 {top1}{best}  "
                  f"wall {record['cost']['wall_s']:.1f}s{ranks}", highlight=False)
    err.print(f"record: {path}", highlight=False, soft_wrap=True)


@user_errors
def profile_cmd(
    task: str = typer.Option(..., "--task", "-t"),
    method: str = typer.Option(..., "--method", "-m"),
    T: Optional[int] = typer.Option(None, "--T"),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="A state_dict file."),
    param: Params = [],
    override: Overrides = [],
    energy: str = typer.Option("45nm-fp32", "--energy"),
    repeats: int = typer.Option(30, "--repeats", help="Timed passes per latency figure."),
    device: Device = "auto",
    data_dir: DataDir = None,
    json_out: Json = False,
) -> None:
    """Parameters, synaptic operations, MACs, energy and latency of a model, without training."""
    from ..measure.profile import profile
    from ..train import pick_device

    if T is not None and T < 1 or repeats < 1:
        raise UsageError("--T and --repeats must be >= 1")
    result = profile(task, method, T, pick_device(device), checkpoint, param, override, energy,
                     repeats, data_dir)
    if json_out:
        print_json(result)
        return
    summary = Table("measure", "value", title=f"{result['method']} on {result['task']}, "
                                              f"T={result['T']}, {result['weights']}")
    for key in ("parameters", "synops", "macs", "energy_uj", "energy_paper_uj",
                "latency_b1_p50_ms", "latency_b1_p95_ms", "latency_bn_p50_ms",
                "latency_bn_p95_ms", "latency_bn_batch"):
        value = result[key]
        summary.add_row(key, f"{value:,.4g}" if isinstance(value, float) else f"{value:,}")
    out.print(summary)
    layers = Table("layer", "synops", "macs", "input spike rate", "paper SOPs",
                   title=f"per sample, energy model {result['energy_model']['name']}")
    for row in result["layers"]:
        rate = "—" if row["input_rate"] is None else f"{row['input_rate']:.3f}"
        layers.add_row(row["layer"], f"{row['synops']:,.0f}", f"{row['macs']:,.0f}", rate,
                       f"{row['paper_sops']:,.0f}")
    out.print(layers)


@user_errors
def env_cmd(device: Device = "auto") -> None:
    """What a record would store about this machine and its software."""
    from ..record import capture_env
    from ..train import pick_device

    print_json(capture_env(pick_device(device), "torch"))


def register(app: typer.Typer) -> None:
    app.command("run")(run_cmd)
    app.command("profile")(profile_cmd)
    app.command("env")(env_cmd)
