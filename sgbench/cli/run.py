"""`sgbench run`, `sgbench profile` and `sgbench env`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table

from ..errors import UsageError
from ..progress import PlainProgress, Reporter
from .common import (DataDir, Device, Json, Overrides, Params, Threads, err, out, parse_ints,
                     print_json, user_errors)


class ProgressReporter(Reporter):
    """On a terminal, a bar over the epochs and one over the current epoch's batches (ETA,
    running loss and top-1, lr) with a line kept per epoch; otherwise one line per epoch and
    phase. All on stderr."""

    def __init__(self, label: str):
        self.label, self.bar, self.epochs, self.tasks = label, None, 0, {}
        self.plain = PlainProgress(label)

    def note(self, text: str) -> None:
        err.print(f"{self.label}: {text}", highlight=False, soft_wrap=True)

    def start(self, epochs: int, first: int = 0) -> None:
        self.epochs = epochs
        self.plain.start(epochs, first)
        if not err.is_terminal:
            return
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                            TextColumn("{task.fields[info]}"), console=err, transient=True)
        self.bar.start()
        self.tasks["epochs"] = self.bar.add_task(f"{self.label} epochs", total=epochs,
                                                 completed=first, info="")
        self.tasks["batches"] = self.bar.add_task("  batches", total=None, info="")

    def batch(self, done: int, total: int | None, loss: float, top1: float, lr: float,
              samples: int | None = None) -> None:
        if self.bar is not None:
            self.bar.update(self.tasks["batches"], completed=done, total=total,
                            info=f"loss {loss:.4f}  top-1 {top1:.2f}%  lr {lr:.3g}")
            return
        line = self.plain.line(done, total, loss, top1, samples)  # a log file: now and then
        if line is not None:
            err.print(line, highlight=False, soft_wrap=True)

    def epoch(self, entry: dict[str, Any]) -> None:
        test = entry.get("test_top1")
        info = (f"train loss {entry['train_loss']:.4f} top-1 {entry['train_top1']:.2f}%  test "
                f"top-1 {test:.2f}%  lr {entry['lr']:.3g}" if test is not None
                else "diverged (non-finite loss)")
        line = f"{self.label} epoch {entry['epoch']}/{self.epochs}  {info}  " \
               f"({entry['epoch_time_s']:.1f}s)"
        self.plain.next_epoch()
        if self.bar is not None:
            self.bar.update(self.tasks["epochs"], completed=entry["epoch"])
            self.bar.reset(self.tasks["batches"], total=None)
            self.bar.console.print(line, highlight=False, soft_wrap=True)  # above the bars
        else:
            err.print(line, highlight=False, soft_wrap=True)

    def phase(self, name: str) -> None:
        if self.bar is not None:
            self.bar.update(self.tasks["batches"], description=f"  {name}", info="")
        else:
            err.print(f"{self.label}: {name}", highlight=False, soft_wrap=True)

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
    fd_weights: int = typer.Option(64, "--fd-weights", help="First-layer weights whose finite "
                                   "differences the diagnostics compare with the surrogate "
                                   "gradient (two forward passes each; 0: none)."),
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
    log: str = typer.Option("", "--log", help="Per-epoch logs beside the record: csv, tb "
                            "(TensorBoard, needs the tensorboard package), or csv,tb."),
) -> None:
    """Train and measure one method on one task; write its record. Under `torchrun
    --nproc_per_node N -m sgbench run ...` it trains data-parallel (DDP) on N processes."""
    from ..record import RecordNotWritten
    from ..train import AlreadyFinished, RunRequest, run

    request = RunRequest(method=method, task=task, T=T, seed=seed, epochs=epochs, params=param,
                         overrides=override, protocol=protocol, device=device, out_dir=out_dir,
                         diag_every=diag_every, fd_weights=fd_weights, data_dir=data_dir, download=download,
                         neuron_backend=neuron_backend, require_fused=require_fused,
                         eval_T=parse_ints(eval_T, "--eval-T"), energy=energy,
                         latency_repeats=latency_repeats, resume=resume, threads=threads,
                         log=[k.strip() for k in log.split(",") if k.strip()])
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
        done = len(record["history"])
        then = ("continues from the checkpoint" if record.get("checkpoint") else
                "starts from the beginning (no epoch finished, so there is no checkpoint yet)")
        err.print(f"interrupted after {done} finished epoch(s); the same command with --resume "
                  f"{then}", highlight=False, soft_wrap=True)
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
    task: Optional[str] = typer.Option(None, "--task", "-t"),
    method: Optional[str] = typer.Option(None, "--method", "-m"),
    T: Optional[int] = typer.Option(None, "--T"),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="A checkpoint `sgbench "
                                              "run` wrote, or a state_dict file."),
    record: Optional[Path] = typer.Option(None, "--record", help="A run's record: its task, "
                                          "method and final weights (its checkpoint)."),
    param: Params = [],
    override: Overrides = [],
    energy: str = typer.Option("45nm-fp32", "--energy"),
    repeats: int = typer.Option(30, "--repeats", help="Timed passes per latency figure."),
    device: Device = "auto",
    data_dir: DataDir = None,
    json_out: Json = False,
) -> None:
    """Parameters, synaptic operations, MACs, energy and latency of a model, without training:
    with random weights, a checkpoint's, or a finished run's (--record)."""
    from ..measure.profile import RANDOM, profile
    from ..train import pick_device

    if T is not None and T < 1 or repeats < 1:
        raise UsageError("--T and --repeats must be >= 1")
    result = profile(task, method, T, pick_device(device), checkpoint, param, override, energy,
                     repeats, data_dir, record)
    if result["weights"] == RANDOM:
        err.print("note: random weights (seed 0): spike counts, operations and energy of a "
                  "trained model differ; pass --checkpoint or --record", highlight=False,
                  soft_wrap=True)
    if json_out:
        print_json(result)
        return
    summary = Table("measure", "value", title=f"{result['method']} on {result['task']}, "
                                              f"T={result['T']}, {Path(result['weights']).name}")
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
    from ..neuron.node import auto_backend
    from ..environment import capture_env
    from ..train import pick_device

    dev = pick_device(device)
    print_json(capture_env(dev, auto_backend(dev)))


def register(app: typer.Typer) -> None:
    app.command("run")(run_cmd)
    app.command("profile")(profile_cmd)
    app.command("env")(env_cmd)
