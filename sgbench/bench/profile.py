"""`sgbench bench profile --task T`: where one training step's time goes, by part (convolutions,
norms, the spiking neurons, pooling, the head, the loss, the optimizer, the rest), forward and
backward, from torch's profiler over steps of the task as `sgbench run` takes them.

Forward time is the time inside each module's forward (a profiler scope per module kind);
backward time is the time of each autograd node (``ConvolutionBackward0``, the engine's
``SequenceFnBackward``, ...), grouped the same way; what no scope covers (Python between the
calls, allocation, the data path) is "other".
"""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import torch
from spikingjelly.activation_based import functional
from torch import nn

# a module kind or an autograd node name -> a part of the step
PARTS = (("conv", "convolutions"), ("batchnorm", "norms"), ("norm", "norms"),
         ("sequencefn", "spiking neurons"), ("fireresetfn", "spiking neurons"),
         ("spikingneuron", "spiking neurons"), ("cupysequencefn", "spiking neurons"),
         ("pool", "pooling"), ("linear", "head (linear)"), ("addmm", "head (linear)"),
         ("mm", "head (linear)"), ("flatten", "other layers"), ("loss", "loss"),
         ("nllloss", "loss"), ("logsoftmax", "loss"))


def part_of(name: str) -> str:
    key = name.lower().replace("_", "")
    return next((part for word, part in PARTS if word in key), "other layers")


def _scoped(model: nn.Module) -> list:
    """Forward hooks that open and close a profiler scope around every leaf module."""
    handles = []
    for module in model.modules():
        if list(module.children()) and not hasattr(module, "rule"):
            continue  # containers: their leaves are scoped

        def enter(mod, args, name=f"forward {type(module).__name__}"):
            mod._scope = torch.profiler.record_function(name)
            mod._scope.__enter__()

        def leave(mod, args, output):
            mod._scope.__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    return handles


def profile_steps(task: str, method_name: str = "atan", steps: int = 10, warmup: int = 3,
                  data_dir=None, overrides=()) -> dict[str, Any]:
    """Shares of each part in the training steps of ``task`` (CPU)."""
    from ..config import resolve_task
    from ..data import encode
    from ..registry import load_method
    from ..train import make_optimizer
    from .epoch import _candidate, _training

    cfg = resolve_task(task, overrides=list(overrides))
    cpu = torch.device("cpu")
    data, loss_fn, _, batches = _training(cfg, cpu, data_dir, 0)
    method = load_method(method_name)()
    sgbench = _candidate("sgbench", cfg, data, cpu, 0, method, None, make_optimizer)
    model, optimizer = sgbench.model, sgbench.optimizer

    def step() -> None:
        x, y = next(batches)
        out = model(encode(sgbench.precision.input(x), cfg["T"], cfg["data"]["encoding"]))
        with torch.profiler.record_function("forward loss"):
            loss = loss_fn(out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with torch.profiler.record_function("optimizer step"):
            optimizer.step()
        functional.reset_net(model)

    for _ in range(warmup):
        step()
    handles = _scoped(model)
    try:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for _ in range(steps):
                step()
            wall = time.perf_counter() - start
    finally:
        for handle in handles:
            handle.remove()
    return _shares(prof.events(), wall, steps, cfg, method.name)


def _shares(events, wall: float, steps: int, cfg: dict[str, Any], method: str) -> dict[str, Any]:
    """Top-level time per (part, direction): module scopes, autograd nodes, the optimizer."""
    totals: dict[tuple[str, str], float] = defaultdict(float)
    for event in events:
        name = event.name
        if event.cpu_parent is not None and not name.startswith("forward "):
            continue  # counted in its parent
        if name.startswith("forward "):
            parent = event.cpu_parent
            if parent is not None and parent.name.startswith("forward "):
                continue
            key = ("loss" if name == "forward loss" else part_of(name[8:]), "forward")
        elif name.startswith("autograd::engine::evaluate_function: "):
            key = (part_of(name.split(": ", 1)[1].replace("Backward", "")), "backward")
        elif name == "optimizer step" or name.startswith("Optimizer.step"):
            key = ("optimizer", "step")
        else:
            continue
        totals[key] += event.cpu_time_total / 1e6
    covered = sum(totals.values())
    rows = [{"part": part, "phase": phase, "s_per_step": t / steps, "share": t / wall}
            for (part, phase), t in sorted(totals.items(), key=lambda kv: -kv[1])]
    rows.append({"part": "other (Python, allocation, data)", "phase": "",
                 "s_per_step": max(wall - covered, 0.0) / steps,
                 "share": max(wall - covered, 0.0) / wall})
    return {"task": cfg["name"], "version": cfg["version"], "T": cfg["T"],
            "batch": cfg["train"]["batch_size"], "method": method, "steps": steps,
            "threads": torch.get_num_threads(), "s_per_step": wall / steps, "parts": rows}
