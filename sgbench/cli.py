"""The command line: each command parses its arguments, makes one library call, prints the result.

Errors a user can cause end in one line on stderr and a non-zero exit (2 for wrong names and values).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .alloc import tune_allocator
from .errors import UsageError, UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="sgbench: benchmark surrogate-gradient methods for spiking neural networks.")
bench_app = typer.Typer(no_args_is_help=True, help="Speed benchmarks that print numbers.")
app.add_typer(bench_app, name="bench")
reference_app = typer.Typer(no_args_is_help=True,
                            help="The reference suite: run it, pin it, render the leaderboard.")
app.add_typer(reference_app, name="reference")
err = Console(stderr=True)
out = Console()


def user_errors(fn: Callable) -> Callable:
    """Turn UserError into one line on stderr and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(exc.code) from None

    return wrapper


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


def set_threads(threads: int | None) -> None:
    """torch's intra-op threads for a benchmark (None: torch's default)."""
    if threads is not None:
        if threads < 1:
            raise UsageError(f"--threads must be >= 1, got {threads}")
        import torch

        torch.set_num_threads(threads)


def parse_ints(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{flag} takes integers separated by commas, got '{text}'") from None


@app.command("run")
@user_errors
def run_cmd(
    method: str = typer.Option(..., "--method", "-m", help="Method name or path to a .py file."),
    task: str = typer.Option(..., "--task", "-t", help="Task name or path to a .yaml file."),
    T: Optional[int] = typer.Option(None, "--T", help="Timesteps (default: the task's)."),
    seed: int = typer.Option(0, "--seed"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Override train.epochs."),
    param: list[str] = typer.Option([], "--param", help="Method parameter key=value."),
    override: list[str] = typer.Option([], "-o", "--override", help="Task key=value."),
    protocol: str = typer.Option("controlled", "--protocol", help="controlled or paper."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    out_dir: Path = typer.Option(Path("results/runs"), "--out", help="Folder for the record."),
    json_out: bool = typer.Option(False, "--json", help="Print the record as JSON on stdout."),
    diag_every: int = typer.Option(0, "--diag-every", help="Gradient diagnostics every N epochs "
                                   "(always after the last)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Dataset root (default: "
                                            "$SGBENCH_DATA, else ~/.cache/sgbench/data)."),
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
    threads: Optional[int] = typer.Option(None, "--threads", help="torch's intra-op CPU threads "
                                          "(default: torch's own; the record keeps the count)."),
) -> None:
    """Train and measure one method on one task; write its record. Under `torchrun
    --nproc_per_node N -m sgbench run ...` it trains data-parallel (DDP) on N processes."""
    from .train import RunRequest, run

    request = RunRequest(method=method, task=task, T=T, seed=seed, epochs=epochs, params=param,
                         overrides=override, protocol=protocol, device=device, out_dir=out_dir,
                         diag_every=diag_every, data_dir=data_dir, download=download,
                         neuron_backend=neuron_backend, require_fused=require_fused,
                         eval_T=parse_ints(eval_T, "--eval-T"), energy=energy,
                         latency_repeats=latency_repeats, resume=resume, threads=threads)
    record, path = run(request, ProgressReporter(f"{Path(method).stem} on {task}"))
    if path is not None:  # under torchrun, rank 0 alone reports
        _report_run(record, path, json_out)
    if record["status"] == "interrupted":
        raise typer.Exit(130)


def _report_run(record: dict, path: Path, json_out: bool) -> None:
    from .record import print_json

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


@app.command("list")
@user_errors
def list_cmd(
    what: str = typer.Argument(..., help="methods or tasks"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """List registered methods (name, kinds, fidelity, citation) or tasks."""
    from .config import describe_task, task_names
    from .record import print_json
    from .registry import all_methods

    if what == "methods":
        rows = [cls.describe() for cls in all_methods()]
        columns = ["name", "kinds", "fidelity", "citation"]
    elif what == "tasks":
        rows = [describe_task(name) for name in task_names()]
        columns = ["name", "version", "dataset", "arch", "T", "citation"]
    else:
        raise UsageError(f"list takes 'methods' or 'tasks', got '{what}'")
    if json_out:
        print_json(rows)
        return
    table = Table()
    for column in columns:  # every column but the last (the citation) keeps its width
        table.add_column(column, no_wrap=column != columns[-1])
    for row in rows:
        table.add_row(*(", ".join(v) if isinstance(v, list) else str(v)
                        for v in (row[c] for c in columns)))
    out.print(table)


@app.command("compare")
@user_errors
def compare_cmd(
    runs: Path = typer.Option(Path("results/runs"), "--runs", help="Folder of run records."),
    task: Optional[str] = typer.Option(None, "--task"),
    fmt: str = typer.Option("table", "--format", help="table, md, csv, json or html."),
    columns: Optional[str] = typer.Option(None, "--columns", help="Measures to show, e.g. "
                                          "top1,synops,energy_uj,latency_b1_p50_ms."),
    T: Optional[int] = typer.Option(None, "--T", help="Only this T."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="A method to compare each "
                                           "row with (difference and Welch's t-test)."),
    published_file: Optional[Path] = typer.Option(None, "--published",
                                                  help="Default: results/published.yaml."),
) -> None:
    """Leaderboard rows per configuration: mean ± std of top-1 and the chosen measures, n."""
    from .compare import check_format, parse_columns, render, summarize
    from .published import load as load_published

    check_format(fmt)
    chosen = parse_columns(columns)
    # the default folder may not exist yet: then only published rows are shown
    records = _load_runs(runs) if runs.is_dir() or runs != Path("results/runs") else []
    rows = summarize(records, task, T, load_published(published_file), baseline)
    typer.echo(render(rows, fmt, chosen))


def _load_runs(runs: Path) -> list[dict]:
    """Every record under ``runs``; unreadable record files are named on stderr and skipped."""
    from .record import load_records

    records, problems = load_records(runs)
    for problem in problems:
        err.print(f"[yellow]skipped[/] {problem}", highlight=False, soft_wrap=True)
    return records


def _read_record(path: Path) -> dict:
    from .record import NotARecord, read_record

    try:
        return read_record(path)
    except NotARecord:
        raise UserError(f"'{path}' is not an sgbench run record") from None


@app.command("show")
@user_errors
def show_cmd(
    record_path: Path = typer.Argument(..., metavar="RECORD", help="A run record (.json)."),
    epoch: Optional[int] = typer.Option(None, "--epoch", help="Diagnostics after this epoch."),
    json_out: bool = typer.Option(False, "--json", help="Print the diagnostics as JSON."),
) -> None:
    """A run's result and its gradient diagnostics per layer and timestep."""
    from .record import print_json
    from .show import activity_table, gradient_table, headline, snapshot, summary_table, \
        timestep_table

    record = _read_record(record_path)
    snap = snapshot(record, epoch)
    if json_out:
        print_json(snap)
        return
    out.print(headline(record), highlight=False, markup=False)
    for table in (activity_table(snap), gradient_table(snap), timestep_table(snap),
                  summary_table(snap)):
        out.print(table)


@app.command("profile")
@user_errors
def profile_cmd(
    task: str = typer.Option(..., "--task", "-t"),
    method: str = typer.Option(..., "--method", "-m"),
    T: Optional[int] = typer.Option(None, "--T"),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="A state_dict file."),
    param: list[str] = typer.Option([], "--param"),
    override: list[str] = typer.Option([], "-o", "--override"),
    energy: str = typer.Option("45nm-fp32", "--energy"),
    repeats: int = typer.Option(30, "--repeats", help="Timed passes per latency figure."),
    device: str = typer.Option("auto", "--device"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Parameters, synaptic operations, MACs, energy and latency of a model, without training."""
    from .measure.profile import profile
    from .record import print_json
    from .train import pick_device

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


@app.command("check")
@user_errors
def check_cmd(
    published_file: Optional[Path] = typer.Option(None, "--published",
                                                  help="Default: results/published.yaml."),
    runs: Path = typer.Option(Path("results/runs"), "--runs", help="Records to check."),
) -> None:
    """Validate the published numbers, every task YAML and every record; exit 1 on problems."""
    from .check import check

    found, counts = check(published_file, runs)
    checked = ", ".join(f"{n} {what}" for what, n in counts.items())
    if found:
        for problem in found:
            err.print(f"[red]problem[/] {problem}", highlight=False, soft_wrap=True)
        err.print(f"{len(found)} problem(s) in {checked}", highlight=False)
        raise typer.Exit(1)
    out.print(f"ok: {checked}", highlight=False)


@reference_app.command("run")
@user_errors
def reference_run_cmd(
    suite_name: str = typer.Option("digits", "--suite", help="A suite of results/reference/."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: "
                                           "results/reference-runs/SUITE."),
    jobs: int = typer.Option(2, "--jobs", help="Runs at a time (one thread each)."),
) -> None:
    """Run every configuration of a reference suite (results/reference/SUITE.yaml)."""
    from .record import ensure_writable
    from .reference import load_suite, run_suite, suite_runs

    if jobs < 1:
        raise UsageError("--jobs must be >= 1")
    suite = load_suite(suite_name)
    out_dir = ensure_writable(out_dir or Path("results/reference-runs") / suite_name)
    err.print(f"{len(suite_runs(suite))} runs, {jobs} at a time -> {out_dir}", highlight=False)
    paths = run_suite(out_dir, jobs, suite)
    out.print(f"{len(paths)} records in {out_dir}", highlight=False)


@reference_app.command("pin")
@user_errors
def reference_pin_cmd(
    suite_name: str = typer.Option("digits", "--suite", help="A suite of results/reference/."),
    runs: Optional[Path] = typer.Option(None, "--runs", help="Default: "
                                        "results/reference-runs/SUITE."),
) -> None:
    """Pin a suite's results (mean, std, tolerance) and regenerate results/LEADERBOARD.md."""
    import json

    from .record import load_records
    from .reference import LEADERBOARD, leaderboard, load_suite, pin, pinned_path

    suite = load_suite(suite_name)
    records, problems = load_records(runs or Path("results/reference-runs") / suite_name)
    if problems:
        raise UserError("; ".join(problems))
    pinned = pin(records, suite)
    pinned_path(suite_name).write_text(json.dumps(pinned, indent=1) + "\n")
    LEADERBOARD.write_text(leaderboard())
    out.print(f"pinned {len(pinned['groups'])} configurations in {pinned_path(suite_name)}; "
              f"wrote {LEADERBOARD}", highlight=False)


@reference_app.command("leaderboard")
@user_errors
def reference_leaderboard_cmd(
    check: bool = typer.Option(False, "--check", help="Exit 1 if LEADERBOARD.md is stale."),
) -> None:
    """Render results/LEADERBOARD.md from the committed leaderboard records and the pinned
    numbers (or check that it is current)."""
    from .reference import LEADERBOARD, leaderboard

    text = leaderboard()
    if check:
        if not LEADERBOARD.is_file() or LEADERBOARD.read_text() != text:
            raise UserError(f"{LEADERBOARD} is stale: run `sgbench reference leaderboard`")
        out.print(f"{LEADERBOARD} is current", highlight=False)
        return
    LEADERBOARD.write_text(text)
    out.print(f"wrote {LEADERBOARD}", highlight=False)


@app.command("regress")
@user_errors
def regress_cmd(
    suite_name: str = typer.Option("digits", "--suite", help="Whose pinned numbers to check."),
    runs: Optional[Path] = typer.Option(None, "--runs", help="Default: "
                                        "results/reference-runs/SUITE."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="Pinned numbers "
                                             "(default: results/reference/SUITE.pinned.json)."),
    published_too: bool = typer.Option(False, "--published", help="Also check published "
                                       "numbers matched approximately or exactly."),
) -> None:
    """Exit 1 when runs fall short of the pinned reference (or published) numbers."""
    from .published import load as load_published
    from .reference import covered, load_suite, pinned_path, read_pinned, regress

    load_suite(suite_name)  # an unknown suite fails here, with the known names
    runs = runs or Path("results/reference-runs") / suite_name
    records = _load_runs(runs)
    pinned = read_pinned(reference or pinned_path(suite_name))
    short = regress(records, pinned, load_published() if published_too else [])
    checked = f"{covered(records, pinned)} of {len(pinned['groups'])} pinned configurations"
    if not short:
        out.print(f"no regression ({checked} present in {runs})", highlight=False)
        return
    table = Table("task", "T", "method", "top-1", "n", "against", "expected", "tolerance",
                  "short by", title=f"regressions ({checked})")
    for row in short:
        table.add_row(row["task"], str(row["T"]), row["method"], f"{row['top1']:.2f}",
                      str(row["n"]), row["against"], f"{row['expected']:.2f}",
                      f"{row['tolerance']:.2f}", f"{row['shortfall']:.2f}")
    out.print(table)
    raise typer.Exit(1)


@app.command("env")
@user_errors
def env_cmd(device: str = typer.Option("auto", "--device")) -> None:
    """What a record would store about this machine and its software."""
    from .record import capture_env, print_json
    from .train import pick_device

    print_json(capture_env(pick_device(device), "torch"))


@bench_app.command("neuron")
@user_errors
def bench_neuron_cmd(
    T: int = typer.Option(4, "--T"),
    neurons: int = typer.Option(2_000_000, "--neurons", help="Neurons per timestep."),
    repeats: int = typer.Option(15, "--repeats"),
    device: str = typer.Option("cpu", "--device"),
    dtype: str = typer.Option("float32", "--dtype", help="float32, float16 or bfloat16 input."),
    sweep: bool = typer.Option(False, "--sweep", help="T in {4, 10} x 2^20..2^26 neurons."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch's intra-op threads."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Forward+backward time and memory bandwidth: sgbench's backends vs SpikingJelly's LIFNode
    (built-in and custom surrogate) vs a plain autograd loop, interleaved, medians."""
    import torch

    from .bench import bench_neuron
    from .record import capture_env, print_json
    from .train import pick_device

    if T < 1 or neurons < 1 or repeats < 1:
        raise UsageError("--T, --neurons and --repeats must be >= 1")
    set_threads(threads)
    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in dtypes:
        raise UsageError(f"--dtype must be one of {', '.join(dtypes)}; got '{dtype}'")
    dev = pick_device(device)
    plan = [(t, 2**e) for t in (4, 10) for e in (20, 22, 24, 26)] if sweep else [(T, neurons)]
    results = [bench_neuron(T=t, neurons=n, repeats=repeats, device=str(dev),
                            dtype=dtypes[dtype]) for t, n in plan]
    env = capture_env(dev, "see candidates")
    if json_out:
        print_json({"runs": results, "env": env})
        return
    for result in results:
        table = Table("candidate", "median (ms)", "min (ms)", "time / sgbench", "GB/s",
                      title=f"forward+backward, T={result['T']}, {result['neurons_per_step']:,} "
                            f"neurons/step, {result['dtype']}, {result['surrogate']}, "
                            f"{env['device_name']}")
        for row in result["results"]:
            table.add_row(row["candidate"], f"{row['median_s'] * 1e3:.2f}",
                          f"{row['min_s'] * 1e3:.2f}", f"{row['time_vs_sgbench']:.2f}x",
                          f"{row['gb_per_s']:.1f}")
        out.print(table)


@bench_app.command("train")
@user_errors
def bench_train_cmd(
    methods: str = typer.Option(",".join(("sigmoid", "mpd_agl", "ds_atgo", "adali", "a2sg",
                                          "st_asg", "psg_pda")), "--methods"),
    batch: int = typer.Option(32, "--batch"),
    T: int = typer.Option(4, "--T"),
    steps: int = typer.Option(10, "--steps"),
    device: str = typer.Option("cpu", "--device"),
    backend: str = typer.Option("auto", "--neuron-backend"),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch's intra-op threads."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Training-step time of ResNet-19 on CIFAR-shaped random data, per method."""
    from .bench import bench_train
    from .record import capture_env, print_json
    from .registry import load_method
    from .train import pick_device

    names = tuple(m.strip() for m in methods.split(",") if m.strip())
    for name in names:
        load_method(name)  # unknown names fail here, with "did you mean"
    if min(batch, T, steps) < 1 or batch * T < 2:
        raise UsageError("--batch, --T and --steps must be >= 1, and batch x T >= 2 (BatchNorm)")
    set_threads(threads)
    dev = pick_device(device)
    result = bench_train(names, batch=batch, T=T, steps=steps, device=str(dev), backend=backend)
    result["env"] = capture_env(dev, backend)
    if json_out:
        print_json(result)
        return
    table = Table("method", "backend", "median (ms)", "min (ms)", f"time / {names[0]}",
                  title=f"training step, {result['model']}, batch {batch}, T={T}, "
                        f"{result['env']['device_name']}")
    for row in result["results"]:
        table.add_row(row["method"], str(row["backend"]), f"{row['median_s'] * 1e3:.1f}",
                      f"{row['min_s'] * 1e3:.1f}", f"{row['time_vs_first']:.2f}x")
    out.print(table)


@bench_app.command("epoch")
@user_errors
def bench_epoch_cmd(
    task: str = typer.Option(..., "--task", "-t", help="Task name or path to a .yaml file."),
    method: str = typer.Option("atan", "--method", "-m", help="sgbench's method; the baselines "
                               "use its surrogate (ATan for methods that adapt theirs)."),
    steps: int = typer.Option(20, "--steps", help="Timed training steps per candidate."),
    device: str = typer.Option("cpu", "--device"),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch's intra-op threads."),
    override: list[str] = typer.Option([], "-o", "--override", help="Task key=value."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Training steps of a task as sgbench runs them (its data path included), interleaved with
    the same network on SpikingJelly's neurons and on a plain PyTorch LIF loop."""
    from .epoch_bench import bench_epoch
    from .record import capture_env, print_json
    from .train import pick_device

    if steps < 1:
        raise UsageError("--steps must be >= 1")
    set_threads(threads)
    dev = pick_device(device)
    result = bench_epoch(task, method, steps=steps, device=str(dev), data_dir=data_dir,
                         overrides=override)
    result["env"] = capture_env(dev, result["sgbench_backend"])
    if json_out:
        print_json(result)
        return
    table = Table("candidate", "median step (ms)", "samples/s", "time / sgbench",
                  title=f"training step, {result['task']} v{result['version']}, batch "
                        f"{result['batch']}, T={result['T']}, {result['method']}, "
                        f"{result['threads']} thread(s), {result['env']['device_name']}")
    for row in result["results"]:
        table.add_row(row["candidate"], f"{row['median_s'] * 1e3:.1f}",
                      f"{row['samples_per_s']:,.0f}", f"{row['time_vs_sgbench']:.2f}x")
    out.print(table)
    ratios = result["ratios"]
    out.print(f"sgbench's time: {ratios['sgbench/spikingjelly']:.2f}x SpikingJelly's, "
              f"{ratios['sgbench/plain']:.2f}x the plain loop's; waiting for data "
              f"{100 * result['data_share']:.1f}% of sgbench's step time "
              f"({result['data_s_per_batch'] * 1e3:.2f} ms a batch); an epoch ~"
              f"{result['epoch_s_estimate']:.0f} s. Baselines' surrogate: "
              f"{result['baseline_surrogate']}.", highlight=False)


@app.command("plot")
@user_errors
def plot_cmd(
    kind: str = typer.Argument(..., help="accuracy-vs-T, pareto, curves (over a task's records), "
                               "firing, membrane or coverage (one record)."),
    runs: Path = typer.Option(Path("results/runs"), "--runs", help="Folder of run records."),
    task: Optional[str] = typer.Option(None, "--task", help="Needed when the records cover "
                                       "several tasks."),
    method: Optional[str] = typer.Option(None, "--method", help="Only this method's records."),
    record_path: Optional[Path] = typer.Option(None, "--record", help="The record of a "
                                               "one-record plot (default: the newest match)."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="A .png or .svg file (default: "
                                            "results/plots/<task>_<kind>.png)."),
) -> None:
    """Draw one figure from run records (matplotlib, PNG or SVG by the extension of --out)."""
    from .plots import ONE_RECORD, check_kind, check_out, draw, pick_record, pick_task

    check_kind(kind)
    if out_file is not None:
        check_out(out_file)
    if kind in ONE_RECORD and record_path is not None:
        records = [_read_record(record_path)]
    else:
        records = [r for r in _load_runs(runs)
                   if method is None or r["method"]["name"] == method]
    if kind in ONE_RECORD:
        records = [pick_record(records, task, method)]
        name = records[0]["task"]["name"]
    else:
        task = name = pick_task(records, task)
    path = draw(kind, records, task, out_file or Path("results/plots") / f"{name}_{kind}.png")
    out.print(f"wrote {path}", highlight=False, soft_wrap=True)


@app.command("report")
@user_errors
def report_cmd(
    out_dir: Path = typer.Option(Path("site"), "--out", help="Folder for index.html and img/."),
    runs: Path = typer.Option(Path("results/runs"), "--runs", help="Folder of run records."),
    published_file: Optional[Path] = typer.Option(None, "--published",
                                                  help="Default: results/published.yaml."),
) -> None:
    """A static HTML report: leaderboards, published numbers with evidence levels, and plots."""
    from .published import load as load_published
    from .record import ensure_writable
    from .report import build

    records = _load_runs(runs)
    page = build(records, load_published(published_file), ensure_writable(out_dir), runs)
    out.print(f"wrote {page}", highlight=False, soft_wrap=True)


@app.command("sweep")
@user_errors
def sweep_cmd(
    spec_path: Path = typer.Argument(..., metavar="SPEC.yaml", help="The sweep's grid."),
    status: bool = typer.Option(False, "--status", help="Show each job's state; run nothing."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the jobs that would run."),
    executor: str = typer.Option("local", "--executor", help="local, slurm or submitit-local "
                                 "(the Slurm path through submitit's LocalExecutor)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Local jobs at a time "
                                          "(default: one per GPU, else 1)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="The sweep's folder (default: "
                                           "the spec's out, else results/sweeps/NAME)."),
    partition: Optional[str] = typer.Option(None, "--partition", help="Slurm partition."),
    time_min: int = typer.Option(240, "--time-min", help="Slurm time limit per job, minutes."),
    gpus: int = typer.Option(1, "--gpus", help="GPUs per Slurm job."),
    cpus: int = typer.Option(8, "--cpus", help="CPUs per Slurm job."),
    json_out: bool = typer.Option(False, "--json", help="Print the job table as JSON."),
) -> None:
    """Run a grid of methods x tasks x T x seeds x params x protocols; finished jobs are
    skipped, interrupted ones resume, failures are reported and the rest go on."""
    from .checkpoint import graceful_stop
    from .sweep import SlurmOptions, check_executor, counts, load_spec, plan, run_sweep, states

    spec = load_spec(spec_path, out_dir)
    check_executor(executor, workers)
    if status or dry_run:
        shown = plan(spec)[0] if dry_run else states(spec)
        _sweep_table(spec, shown, json_out, "would run" if dry_run else "status")
        return
    todo, skipped = plan(spec)
    err.print(f"sweep {spec.name}: {len(spec.jobs)} jobs, {len(skipped)} done or running, "
              f"{len(todo)} to run, in {spec.out}", highlight=False, soft_wrap=True)
    finished = [0]

    def report(state) -> None:
        finished[0] += 1
        top1 = (state.record or {}).get("metrics", {}).get("top1")
        result = f"top-1 {top1:.2f}%" if top1 is not None else state.note
        err.print(f"[{finished[0]}/{len(todo)}] {state.state:<11} {state.job.id}  {result}",
                  highlight=False, soft_wrap=True)

    with graceful_stop():
        final = run_sweep(spec, todo, executor, workers,
                          SlurmOptions(partition, time_min, gpus, cpus), report)
    _sweep_table(spec, final, json_out, "summary")
    tally = counts(final)
    if tally.get("interrupted") or tally.get("pending") or tally.get("partial"):
        raise typer.Exit(130)
    if tally.get("failed"):
        raise typer.Exit(1)


def _cell(column: str, value) -> str:
    if value is None:
        return "task's" if column == "T" else "—"
    return f"{value:.2f}" if column == "top1" else f"{value:.1f}" if column == "wall_s" \
        else str(value)


def _sweep_table(spec, shown, json_out: bool, title: str) -> None:
    from .record import print_json
    from .sweep import counts, summary_rows

    rows = summary_rows(shown)
    if json_out:
        print_json({"sweep": spec.name, "out": str(spec.out), "counts": counts(shown),
                    "jobs": rows})
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


def main() -> None:
    tune_allocator()
    app()


if __name__ == "__main__":
    main()
