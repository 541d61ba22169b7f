"""`sgbench bench neuron|train|epoch|methods|profile`: speed benchmarks that print numbers."""
from __future__ import annotations

import typer
from rich.table import Table

from ..errors import UsageError
from pathlib import Path

from .common import (DataDir, Json, Overrides, TaskName, Threads, out, print_json, print_tables,
                     set_threads, user_errors)

bench_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                        help="Speed benchmarks that print numbers.")


# Bounds of the bench commands' numbers: far beyond a useful measurement, short of a run that
# never ends (T as `run`'s; steps and repeats of seconds each at most).
MAX_T, MAX_REPEATS, MAX_STEPS = 1024, 1000, 10_000


def check_steps(steps: int) -> None:
    if not 1 <= steps <= MAX_STEPS:
        raise UsageError(f"--steps must lie in [1, {MAX_STEPS}], got {steps}")


def check_memory(needed: int, what: str) -> None:
    """A benchmark's tensors must fit in this machine's memory (a usage error otherwise)."""
    import os

    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if needed > total:
        raise UsageError(f"{what} needs about {needed / 2**30:.0f} GiB for its tensors; this "
                         f"machine has {total / 2**30:.0f} GiB")


@bench_app.command("neuron")
@user_errors
def bench_neuron_cmd(
    T: int = typer.Option(4, "--T"),
    neurons: int = typer.Option(2_000_000, "--neurons", help="Neurons per timestep."),
    repeats: int = typer.Option(15, "--repeats"),
    device: str = typer.Option("cpu", "--device"),
    dtype: str = typer.Option("float32", "--dtype", help="float32, float16 or bfloat16 input."),
    sweep: bool = typer.Option(False, "--sweep", help="T in {4, 10} x 2^20..2^26 neurons."),
    threads: Threads = None,
    json_out: Json = False,
) -> None:
    """Forward+backward time and memory bandwidth: sgbench's backends vs SpikingJelly's LIFNode
    (built-in and custom surrogate) vs a plain autograd loop, interleaved, medians."""
    import torch

    from ..bench.neuron import bench_neuron
    from ..environment import capture_env, machine_label
    from ..train import pick_device

    if not (1 <= T <= MAX_T and neurons >= 1 and 1 <= repeats <= MAX_REPEATS):
        raise UsageError(f"--T must lie in [1, {MAX_T}], --neurons be >= 1 (memory bounds it) "
                         f"and --repeats lie in [1, {MAX_REPEATS}]; got {T}, {neurons} and "
                         f"{repeats}")
    check_memory(T * neurons * 4 * 12, "--T x --neurons")
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
                      "time / memory bound",
                      title=f"forward+backward, T={result['T']}, {result['neurons_per_step']:,} "
                            f"neurons/step, {result['dtype']}, {result['surrogate']}, "
                            f"{machine_label(env)}; memory bound: a copy of the same bytes "
                            f"in the same rounds, {result['memory_bound_s'] * 1e3:.2f} ms")
        for row in result["results"]:
            table.add_row(row["candidate"], f"{row['median_s'] * 1e3:.2f}",
                          f"{row['min_s'] * 1e3:.2f}", f"{row['time_vs_sgbench']:.2f}x",
                          f"{row['gb_per_s']:.1f}", f"{row['time_vs_memory_bound']:.2f}x")
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
    threads: Threads = None,
    json_out: Json = False,
) -> None:
    """Training-step time of ResNet-19 on CIFAR-shaped random data, per method."""
    from ..bench.neuron import bench_train
    from ..environment import capture_env, machine_label
    from ..registry import load_method
    from ..train import pick_device

    names = tuple(m.strip() for m in methods.split(",") if m.strip())
    if not names:
        raise UsageError(f"--methods takes method names separated by commas, got '{methods}'")
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
                        f"{machine_label(result['env'])}")
    for row in result["results"]:
        table.add_row(row["method"], str(row["backend"]), f"{row['median_s'] * 1e3:.1f}",
                      f"{row['min_s'] * 1e3:.1f}", f"{row['time_vs_first']:.2f}x")
    out.print(table)


@bench_app.command("epoch")
@user_errors
def bench_epoch_cmd(
    task: TaskName,
    method: str = typer.Option("atan", "--method", "-m", help="sgbench's method; the baselines "
                               "use its surrogate (ATan for methods that adapt theirs)."),
    steps: int = typer.Option(20, "--steps", help="Timed training steps per candidate."),
    device: str = typer.Option("cpu", "--device"),
    threads: Threads = None,
    override: Overrides = [],
    data_dir: DataDir = None,
    json_out: Json = False,
) -> None:
    """Training steps of a task as sgbench runs them (its data path included), interleaved with
    the same network on SpikingJelly's neurons and on a plain PyTorch LIF loop."""
    from ..bench.epoch import bench_epoch
    from ..environment import capture_env, machine_label
    from ..train import pick_device

    check_steps(steps)
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
                        f"{result['threads']} thread(s), {machine_label(result['env'])}")
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
              f"{result['baseline_surrogate']}. sgbench's feature maps: "
              f"{'channels-last' if result['sgbench_channels_last'] else 'contiguous'} "
              f"(the task's train.channels_last); the baselines': contiguous.", highlight=False)


@bench_app.command("methods")
@user_errors
def bench_methods_cmd(
    task: TaskName,
    methods: str = typer.Option("all", "--methods", help="Comma-separated, the first the "
                                "reference (default: atan, then every other built-in)."),
    steps: int = typer.Option(10, "--steps", help="Timed training steps per method."),
    device: str = typer.Option("cpu", "--device"),
    threads: Threads = None,
    override: Overrides = [],
    data_dir: DataDir = None,
    json_out: Json = False,
) -> None:
    """Every method's training step on a task, interleaved in one process, against the first's
    (atan's): which methods leave the fast path, and what each costs."""
    from ..bench.epoch import bench_methods
    from ..environment import capture_env, machine_label
    from ..registry import builtin_names
    from ..train import pick_device

    check_steps(steps)
    names = (["atan"] + sorted(set(builtin_names()) - {"atan"}) if methods == "all"
             else [m.strip() for m in methods.split(",") if m.strip()])
    set_threads(threads)
    dev = pick_device(device)
    result = bench_methods(task, names, steps=steps, device=str(dev), data_dir=data_dir,
                           overrides=override)
    result["env"] = capture_env(dev, result["results"][0]["backend"])
    if json_out:
        print_json(result)
        return
    table = Table("method", "backend", "median step (ms)", f"time / {names[0]}",
                  title=f"training step, {result['task']} v{result['version']}, batch "
                        f"{result['batch']}, T={result['T']}, {result['threads']} thread(s), "
                        f"{machine_label(result['env'])}, interleaved")
    for row in sorted(result["results"], key=lambda r: r["vs_first"]):
        table.add_row(row["method"], row["backend"] or "—", f"{row['median_s'] * 1e3:.1f}",
                      f"{row['vs_first']:.2f}x")
    out.print(table)


@bench_app.command("profile")
@user_errors
def bench_profile_cmd(
    task: TaskName,
    method: str = typer.Option("atan", "--method", "-m"),
    steps: int = typer.Option(10, "--steps", help="Profiled training steps."),
    threads: Threads = None,
    override: Overrides = [],
    data_dir: DataDir = None,
    json_out: Json = False,
) -> None:
    """Where a training step's time goes (CPU): the share of convolutions, norms, spiking
    neurons, pooling, head, loss and optimizer, forward and backward, and the rest."""
    import os

    os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the profiler's own start/stop lines
    from ..bench.profile import profile_steps

    if not 1 <= steps <= 1000:
        raise UsageError(f"--steps must lie in [1, 1000], got {steps}")
    set_threads(threads)
    result = profile_steps(task, method, steps, data_dir=data_dir, overrides=override)
    if json_out:
        print_json(result)
        return
    table = Table("part", "phase", "ms per step", "share",
                  title=f"{result['task']} v{result['version']}, T={result['T']}, batch "
                        f"{result['batch']}, {result['method']}, {result['threads']} thread(s): "
                        f"{1000 * result['s_per_step']:.1f} ms a step")
    for row in result["parts"]:
        table.add_row(row["part"], row["phase"], f"{1000 * row['s_per_step']:.1f}",
                      f"{100 * row['share']:.1f} %")
    print_tables(table)


@user_errors
def selftest_cmd(
    gpu: bool = typer.Option(False, "--gpu", help="The checks that need a CUDA device."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the steps and their budgets."),
    out_dir: Path = typer.Option(Path("selftest"), "--out", help="Folder for selftest.json, "
                                 "selftest.md and the steps' runs."),
    data_dir: DataDir = None,
) -> None:
    """One command for a CUDA machine, at most 10 minutes on one H100/H200: the gpu tests, the
    engine against SpikingJelly in fp32 and fp16, a plugin shape, every method's training step,
    1 vs 4 jobs per GPU, and epochs of SpikingJelly's Fashion-MNIST example; data and packages
    from local paths only. Writes selftest.json and selftest.md and says what it skipped."""
    from ..bench.selftest import TOTAL_BUDGET_S, plan, selftest

    if not gpu:
        raise UsageError("selftest has one suite so far: pass --gpu")
    if dry_run:
        table = Table("step", "budget (s)", "what", "needs", "runs",
                      title=f"sgbench selftest --gpu: {TOTAL_BUDGET_S} s in all")
        for step in plan(out_dir, data_dir):
            table.add_row(step.name, str(step.budget_s), step.what, ", ".join(step.needs) or "—",
                          "python -m " + " ".join(step.argv))
        print_tables(table)
        return
    json_path, md_path = selftest(out_dir, data_dir)
    out.print(f"wrote {json_path} and {md_path}", highlight=False, soft_wrap=True)
    out.print(md_path.read_text(), highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
    app.command("selftest")(selftest_cmd)
