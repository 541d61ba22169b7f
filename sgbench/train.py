"""The one training runner: resolve, build, train and test per epoch, write the record."""
from __future__ import annotations

import dataclasses
import math
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from spikingjelly.activation_based import functional
from torch import nn
from torch.utils.data import DataLoader

from . import record as rec
from .config import config_sha256, resolve_task
from .data import build_data, encode
from .data.location import DataContext
from .errors import UsageError, UserError
from .measure.diagnostics import diagnose
from .measure.inference import headline, measure_inference, peak_memory_mb, test_batch
from .measure.ops import EnergyModel
from .measure.probe import Probe
from .method import Method, parse_params
from .models import build_model
from .neuron.node import check_backend, neurons, used_backend
from .registry import load_method, method_source_sha256


@dataclass
class RunRequest:
    method: str
    task: str
    T: int | None = None
    seed: int = 0
    epochs: int | None = None
    params: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    protocol: str = "controlled"
    device: str = "auto"
    out_dir: Path = Path("results/runs")
    neuron_backend: str | None = None  # auto | torch | cupy: overrides the task's neuron.backend
    require_fused: bool = False
    eval_T: list[int] = field(default_factory=list)  # also test the trained model at these T
    energy: str = "45nm-fp32"  # energy preset, or "E_MAC,E_AC" in pJ
    latency_repeats: int = 30  # timed passes per latency figure
    diag_every: int = 0  # gradient diagnostics every N epochs (0: only after the last epoch)
    data_dir: Path | None = None  # else $SGBENCH_DATA, else the user cache folder
    download: bool = False


class Reporter(Protocol):
    def start(self, epochs: int) -> None: ...
    def epoch(self, entry: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class SilentReporter:
    def start(self, epochs): ...
    def epoch(self, entry): ...
    def close(self): ...


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise UsageError(f"--device must be auto, cpu or cuda; got '{name}'")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but CUDA is not available on this machine")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def param_groups(model: nn.Module, method: Method, train: dict[str, Any]) -> list[dict[str, Any]]:
    """The method's own groups (their lr scaled by ``lr_scale``), then every other parameter."""
    groups, claimed = [], set()
    for group in method.param_groups(model):
        params = list(group["params"])
        claimed.update(id(p) for p in params)
        groups.append({"params": params, "lr": train["lr"] * group.get("lr_scale", 1.0),
                       "weight_decay": group.get("weight_decay", train["weight_decay"])})
    rest = [p for p in model.parameters() if id(p) not in claimed]
    return [{"params": rest}] + groups


def make_optimizer(model: nn.Module, train: dict[str, Any], method: Method | None = None
                   ) -> torch.optim.Optimizer:
    lr, wd = train["lr"], train["weight_decay"]
    params = param_groups(model, method, train) if method is not None else model.parameters()
    if train["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if train["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if train["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=train["momentum"], weight_decay=wd)
    raise UserError(f"train.optimizer must be adam, adamw or sgd; got '{train['optimizer']}'")


def make_schedule(optimizer, train: dict[str, Any]):
    if train["schedule"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=train["epochs"])
    if train["schedule"] == "constant":
        return None
    raise UserError(f"train.schedule must be cosine or constant; got '{train['schedule']}'")


def make_loss(train: dict[str, Any]) -> nn.Module:
    if train["loss"] != "ce":
        raise UserError(f"train.loss must be ce; got '{train['loss']}'")
    return nn.CrossEntropyLoss(label_smoothing=train["label_smoothing"])


@dataclass
class EpochResult:
    loss: float
    top1: float
    samples: int
    compute_s: float


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Precision:
    """Mixed precision (fp16 autocast with loss scaling) and channels-last, on CUDA only."""

    amp: bool = False
    channels_last: bool = False

    @classmethod
    def for_device(cls, train: dict[str, Any], device: torch.device) -> "Precision":
        cuda = device.type == "cuda"
        return cls(train["amp"] and cuda, train["channels_last"] and cuda)

    def input(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.float16, enabled=self.amp)


def train_epoch(model, method: Method, loader, optimizer, loss_fn, T: int, encoding: str,
                device: torch.device, precision: Precision | None = None) -> EpochResult:
    """One pass over the training data. compute_s excludes the time spent loading batches."""
    precision = precision or Precision()
    scaler = torch.amp.GradScaler("cuda", enabled=precision.amp)
    model.train()
    total_loss, correct, samples, compute = 0.0, 0, 0, 0.0
    for step, (x, y) in enumerate(loader):
        x, y = precision.input(x.to(device)), y.to(device)
        _sync(device)
        start = time.perf_counter()
        with precision.autocast():
            logits = model(encode(x, T, encoding))
            loss = loss_fn(logits.float(), y)
            aux = method.aux_loss(model)
            if aux is not None:
                loss = loss + aux
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        functional.reset_net(model)
        method.on_train_batch_end(model, step)
        _sync(device)
        compute += time.perf_counter() - start
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            return EpochResult(loss_value, float("nan"), samples, compute)
        total_loss += loss_value * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        samples += len(y)
    return EpochResult(total_loss / samples, 100.0 * correct / samples, samples, compute)


@torch.no_grad()
def evaluate(model, loader, loss_fn, T: int, encoding: str, device) -> tuple[float, float]:
    model.eval()
    total_loss, correct, samples = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(encode(x, T, encoding))
        functional.reset_net(model)
        total_loss += loss_fn(logits, y).item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        samples += len(y)
    return total_loss / samples, 100.0 * correct / samples


def measure(model, method: Method, data, cfg: dict[str, Any], test_loader, loss_fn,
            energy: EnergyModel, eval_T: list[int], device, repeats: int = 30) -> dict[str, Any]:
    """After training: ops, energy and latency at the trained T, and accuracy with all of them at
    every T of ``eval_T`` (methods with per-timestep state say how they extend to it)."""
    T, encoding = cfg["T"], cfg["data"]["encoding"]
    x = test_batch(data.test, cfg["eval"]["batch_size"], device)
    inference = measure_inference(model, x, T, encoding, energy, repeats)
    rows = []
    for t in sorted(set(eval_T) | {T}) if eval_T else []:
        policy = method.extend_to_T(model, t) if t != T else "trained"
        loss, top1 = evaluate(model, test_loader, loss_fn, t, encoding, device)
        at_t = inference if t == T else measure_inference(model, x, t, encoding, energy, repeats)
        flat = headline(at_t)
        rows.append({"T": t, "top1": top1, "test_loss": loss, "policy": policy,
                     **flat["metrics"], **flat["cost"]})
    return {"inference": {"T": T, **inference}, "eval_T": rows, "headline": headline(inference)}


def _summary(history: list[dict[str, Any]]) -> dict[str, Any]:
    tested = [h for h in history if h.get("test_top1") is not None]
    if not tested:
        return {"top1": None, "top1_best": None, "top1_best_epoch": None, "test_loss": None}
    best = max(tested, key=lambda h: h["test_top1"])
    return {"top1": tested[-1]["test_top1"], "top1_best": best["test_top1"],
            "top1_best_epoch": best["epoch"], "test_loss": tested[-1]["test_loss"]}


def run(req: RunRequest, reporter: Reporter | None = None) -> tuple[dict[str, Any], Path]:
    """Train and test one (method, task, T, seed, protocol); returns the record and its path."""
    reporter = reporter or SilentReporter()
    wall_start = time.perf_counter()
    if req.T is not None and req.T < 1:
        raise UsageError(f"--T must be >= 1, got {req.T}")
    method_cls = load_method(req.method)
    params = parse_params(method_cls, req.params)
    if req.diag_every < 0:
        raise UsageError(f"--diag-every must be >= 0, got {req.diag_every}")
    energy = EnergyModel.parse(req.energy)
    if any(t < 1 for t in req.eval_T) or req.latency_repeats < 1:
        raise UsageError(f"--eval-T values and --latency-repeats must be >= 1, got "
                         f"{req.eval_T} and {req.latency_repeats}")
    overrides = list(req.overrides)
    if req.neuron_backend is not None:
        overrides.append(f"neuron.backend={req.neuron_backend}")
    if req.require_fused:
        overrides.append("neuron.require_fused=true")
    cfg = resolve_task(req.task, T=req.T, epochs=req.epochs, overrides=overrides,
                       protocol=req.protocol, paper_overlay=method_cls.paper_overlay)
    if req.eval_T and cfg["data"]["encoding"] == "frames" and set(req.eval_T) != {cfg["T"]}:
        raise UsageError("--eval-T needs direct or poisson input: event data are integrated into "
                         f"T={cfg['T']} frames")
    device = pick_device(req.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    out_dir = rec.ensure_writable(Path(req.out_dir))

    seed_everything(req.seed)
    data = build_data(cfg["data"], DataContext.resolve(req.data_dir, req.download, cfg["T"]))
    model = build_model(cfg["model"], cfg["neuron"], data.input_shape, data.num_classes)
    train_cfg, T, encoding = cfg["train"], cfg["T"], cfg["data"]["encoding"]
    method = method_cls(params)
    method.attach(model, T)
    check_backend(cfg["neuron"]["backend"], cfg["neuron"]["require_fused"], device)
    precision = Precision.for_device(train_cfg, device)
    model.to(device, memory_format=torch.channels_last if precision.channels_last else
             torch.preserve_format)
    optimizer = make_optimizer(model, train_cfg, method)
    schedule = make_schedule(optimizer, train_cfg)
    loss_fn = make_loss(train_cfg)
    probe = Probe.from_dataset(data.train, train_cfg["batch_size"], T, encoding, loss_fn,
                               method.aux_loss, device)
    timers = {"adapt_s": 0.0, "diagnostics_s": 0.0}
    snapshots: list[dict[str, Any]] = []

    def timed(name: str, fn, *args):
        start = time.perf_counter()
        result = fn(*args)
        timers[name] += time.perf_counter() - start
        return result
    workers = train_cfg["workers"]
    train_loader = DataLoader(data.train, batch_size=train_cfg["batch_size"], shuffle=True,
                              generator=torch.Generator().manual_seed(req.seed),
                              num_workers=workers, persistent_workers=workers > 0)
    test_loader = DataLoader(data.test, batch_size=cfg["eval"]["batch_size"],
                             num_workers=workers)

    history: list[dict[str, Any]] = []
    measured: dict[str, Any] = {"inference": None, "eval_T": [], "headline": {}}
    status, compute_s, samples, error = "ok", 0.0, 0, None
    reporter.start(train_cfg["epochs"])
    try:
        for epoch in range(train_cfg["epochs"]):
            epoch_start = time.perf_counter()
            method.on_epoch_start(model, epoch, train_cfg["epochs"])
            timed("adapt_s", method.adapt, model, epoch, probe)
            lr = optimizer.param_groups[0]["lr"]
            result = train_epoch(model, method, train_loader, optimizer, loss_fn, T, encoding,
                                 device, precision)
            compute_s, samples = compute_s + result.compute_s, samples + result.samples
            entry = {"epoch": epoch + 1, "lr": lr, "train_loss": result.loss,
                     "train_top1": result.top1}
            if not math.isfinite(result.loss):
                status = "diverged"
                entry.update(train_loss=None, train_top1=None, test_loss=None, test_top1=None)
            else:
                entry["test_loss"], entry["test_top1"] = evaluate(model, test_loader, loss_fn, T,
                                                                  encoding, device)
            entry["epoch_time_s"] = time.perf_counter() - epoch_start
            history.append(entry)
            reporter.epoch(entry)
            if status == "diverged":
                break
            last = epoch + 1 == train_cfg["epochs"]
            if last or (req.diag_every and (epoch + 1) % req.diag_every == 0):
                snapshots.append(timed("diagnostics_s", diagnose, model, probe, epoch + 1))
            if schedule is not None:
                schedule.step()
        if status == "ok":
            measured = measure(model, method, data, cfg, test_loader, loss_fn, energy, req.eval_T,
                               device, req.latency_repeats)
    except KeyboardInterrupt:
        status = "interrupted"
    except Exception as exc:  # keep what was measured; the error goes into the record
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        reporter.close()

    record = {
        "schema": rec.SCHEMA,
        "run_id": rec.new_run_id(cfg["name"], method_cls.name, T, req.seed, req.protocol),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "status": status,
        "error": error,
        "method": {"name": method_cls.name, "params": dataclasses.asdict(params),
                   "fidelity": method_cls.fidelity, "kinds": list(method_cls.kinds),
                   "citation": method_cls.citation,
                   "source_sha256": method_source_sha256(method_cls)},
        "task": {"name": cfg["name"], "version": cfg["version"], "config": cfg,
                 "sha256": config_sha256(cfg)},
        "T": T,
        "seed": req.seed,
        "protocol": req.protocol,
        "data": data.meta,
        "model": {"arch": cfg["model"]["arch"],
                  "parameters": sum(p.numel() for p in model.parameters()),
                  "neuron_layers": len(neurons(model))},
        "precision": dataclasses.asdict(precision),  # what was in effect (CUDA only)
        "paper_overlay": method_cls.paper_overlay(cfg["data"]["dataset"])
        if req.protocol == "paper" else {},
        "metrics": {**_summary(history), **measured["headline"].get("metrics", {})},
        "history": history,
        "diagnostics": {"probe": probe.describe(), "snapshots": snapshots},
        "inference": measured["inference"],
        "eval_T": measured["eval_T"],
        "cost": {"wall_s": time.perf_counter() - wall_start,
                 "train_compute_s": compute_s,
                 "train_samples_per_s": samples / compute_s if compute_s > 0 else None,
                 "epochs_completed": len(history), **timers,
                 "epoch_time_s": statistics.fmean(h["epoch_time_s"] for h in history)
                 if history else None,
                 "peak_memory_mb": peak_memory_mb(device),
                 **measured["headline"].get("cost", {})},
        "env": rec.capture_env(device, used_backend(model) or cfg["neuron"]["backend"]),
    }
    path = rec.write_record(record, out_dir)
    if status == "failed":
        raise UserError(f"training failed: {error} (record written: {path})")
    return record, path
