"""`sgbench selftest --gpu`: the checks that need a CUDA machine, as one command that fits in ten
minutes on one H100/H200 and leaves one JSON and one Markdown summary.

Each step is a subprocess (`python -m pytest` or `python -m sgbench`) with its own time budget;
a step that runs over is stopped and recorded as such, and a step whose inputs are missing
(CuPy, SpikingJelly's CUDA path, the Fashion-MNIST files) is skipped with the reason. Nothing
reaches the network: data come from ``--data-dir`` (or the usual data roots), packages from the
environment the command runs in.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import UsageError
from ..files import same_text, starts_with, write_atomic

MD_TITLE = "# sgbench selftest --gpu"

TOTAL_BUDGET_S = 600


@dataclass
class Step:
    name: str
    budget_s: int
    argv: list[str]  # after `python -m`
    what: str
    needs: tuple[str, ...] = ()  # "cupy", "fashion_mnist"


@dataclass
class Outcome:
    name: str
    status: str  # ok, failed, over budget, skipped
    seconds: float = 0.0
    note: str = ""
    tail: list[str] = field(default_factory=list)


def grid_spec(folder: Path) -> Path:
    """The small grid whose wall time is compared at 1 and 4 jobs per GPU."""
    spec = folder / "grid.yaml"
    text = json.dumps({"name": "grid", "methods": ["atan", "rect", "ds_atgo", "a2sg"],
                       "tasks": ["digits"], "T": [4], "seeds": [0, 1], "epochs": 3,
                       "device": "cuda"})
    return write_atomic(spec, text, same_text(text))  # a grid.yaml of the user's stays


def plan(out: Path, data_dir: Path | None) -> list[Step]:
    """The steps in order, each with its budget (together TOTAL_BUDGET_S)."""
    data = ["--data-dir", str(data_dir)] if data_dir else []
    spec = str(grid_spec(out)) if out.is_dir() else str(out / "grid.yaml")
    sweep = ["sgbench", "sweep", spec, "--out"]
    return [
        Step("gpu tests", 150, ["pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider"],
             "the `gpu` tests: cupy kernels against the torch backend, DDP and sweeps on CUDA"),
        Step("bench neuron sweep fp32", 60, ["sgbench", "bench", "neuron", "--device", "cuda",
                                             "--sweep", "--repeats", "5", "--json"],
             "engine vs SpikingJelly's fused LIF, T in {4, 10} x 2^20..2^26, fp32", ("cupy",)),
        Step("bench neuron sweep fp16", 60, ["sgbench", "bench", "neuron", "--device", "cuda",
                                             "--sweep", "--repeats", "5", "--dtype", "float16",
                                             "--json"],
             "the same in fp16", ("cupy",)),
        Step("plugin shape", 20, ["sgbench", "bench", "neuron", "--device", "cuda", "--json"],
             "a plugin's own shape (precomputed) against the built-in shape's kernel and "
             "SpikingJelly's custom-surrogate path", ("cupy",)),
        Step("bench train", 90, ["sgbench", "bench", "train", "--device", "cuda", "--json"],
             "ResNet-19 training-step time for every method"),
        Step("jobs per gpu 1", 45, sweep + [str(out / "grid-1"), "--jobs-per-gpu", "1"],
             "a grid of 8 digits runs, one job at a time on the GPU"),
        Step("jobs per gpu 4", 45, sweep + [str(out / "grid-4"), "--jobs-per-gpu", "4"],
             "the same grid, four jobs at once on the GPU"),
        Step("fashion_mnist_sj", 130, ["sgbench", "run", "--method", "atan", "--task",
                                       "fashion_mnist_sj", "--device", "cuda", "--epochs", "4",
                                       "--out", str(out / "fashion_mnist_sj"), "--json", *data],
             "as many epochs of SpikingJelly's Fashion-MNIST example as fit (4), against its "
             "published 93.3 % after 64", ("fashion_mnist",)),
    ]


def missing(step: Step, data_dir: Path | None) -> str | None:
    """Why a step cannot run here, or None."""
    import importlib.util

    if "cupy" in step.needs and importlib.util.find_spec("cupy") is None:
        return "CuPy is not installed (pip install 'sgbench-snn[cuda]', from a local wheel)"
    if "fashion_mnist" in step.needs:
        from ..data.location import DataContext

        try:
            from ..data.vision import fashion_mnist

            fashion_mnist(DataContext.resolve(data_dir, False, 4))
        except Exception as exc:  # noqa: BLE001 - said as the reason it was skipped
            return f"Fashion-MNIST not found: {str(exc).splitlines()[0][:160]}"
    return None


def run_step(step: Step, env: dict[str, str]) -> Outcome:
    start = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", *step.argv], capture_output=True,
                              text=True, timeout=step.budget_s, env=env)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) \
            else (exc.stdout or "")
        return Outcome(step.name, "over budget", time.monotonic() - start,
                       f"stopped after {step.budget_s} s", tail.splitlines()[-20:])
    seconds = time.monotonic() - start
    lines = (done.stdout + done.stderr).splitlines()
    status = "ok" if done.returncode == 0 else "failed"
    return Outcome(step.name, status, seconds, f"exit {done.returncode}", lines[-40:])


def selftest(out: Path, data_dir: Path | None, runner: Callable[[Step, dict], Outcome] = run_step,
             cuda: bool | None = None) -> tuple[Path, Path]:
    """Run every step (skipping those whose inputs are missing); write selftest.json and
    selftest.md in ``out``; returns their paths. Refuses without CUDA."""
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    if not cuda:
        raise UsageError("selftest --gpu needs a CUDA device and none is visible here "
                         "(--dry-run lists the steps)")
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    results = []
    for step in plan(out, data_dir):
        reason = missing(step, data_dir)
        results.append(Outcome(step.name, "skipped", note=reason) if reason
                       else runner(step, env))
    return write(out, results)


def write(out: Path, results: list[Outcome]) -> tuple[Path, Path]:
    data = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "budget_s": TOTAL_BUDGET_S, "steps": [asdict(r) for r in results],
            "device": _device_name()}
    json_path, md_path = out / "selftest.json", out / "selftest.md"
    write_atomic(json_path, json.dumps(data, indent=1) + "\n", starts_with('{\n "created"'))
    rows = "\n".join(f"| {r.name} | {r.status} | {r.seconds:.0f} | {r.note} |" for r in results)
    write_atomic(md_path, f"{MD_TITLE}\n\n{data['created']}, {data['device']}\n\n"
                          f"| step | result | seconds | note |\n|---|---|---|---|\n{rows}\n",
                 starts_with(MD_TITLE))
    return json_path, md_path


def _device_name() -> str:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA"
    except Exception:  # noqa: BLE001 - a summary field, never fatal
        return "unknown"
