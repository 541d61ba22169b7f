"""The one training runner: resolve, build, train and test per epoch, write the record."""
from __future__ import annotations

import dataclasses
import math
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Protocol

import numpy as np
import torch
from spikingjelly.activation_based import functional
from torch import nn
from torch.utils.data import DistributedSampler

from . import checkpoint, distributed
from . import record as rec
from .checkpoint import StopRequested, stop_requested
from .config import config_sha256, resolve_task
from .data import build_data, encode, loading
from .data.location import DataContext
from .distributed import Dist
from .errors import UsageError, UserError
from .measure.diagnostics import diagnose
from .measure.inference import headline, measure_inference, peak_memory_mb
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
    resume: bool = False  # continue from this configuration's last checkpoint in out_dir
    diag_every: int = 0  # gradient diagnostics every N epochs (0: only after the last epoch)
    data_dir: Path | None = None  # else $SGBENCH_DATA, else the user cache folder
    download: bool = False
    threads: int | None = None  # torch's intra-op threads (None: torch's default)


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


def make_optimizer(model: nn.Module, train: dict[str, Any], method: Method
                   ) -> torch.optim.Optimizer:
    lr, wd = train["lr"], train["weight_decay"]
    params = param_groups(model, method, train)
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


class RateMSE(nn.Module):
    """Mean squared error between the output (a firing rate over T) and the one-hot label: the
    loss of SpikingJelly's examples (e.g. ``conv_fashion_mnist``)."""

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(out, nn.functional.one_hot(y, out.shape[1]).to(out.dtype))


def make_loss(train: dict[str, Any]) -> nn.Module:
    if train["loss"] == "ce":
        return nn.CrossEntropyLoss(label_smoothing=train["label_smoothing"])
    if train["loss"] == "mse":
        return RateMSE()
    raise UserError(f"train.loss must be ce or mse; got '{train['loss']}'")


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
                device: torch.device, precision: Precision | None = None,
                d: Dist = Dist()) -> EpochResult:
    """One pass over the training data (this rank's shard; loss, top-1 and samples are summed
    over the ranks). compute_s excludes the time spent loading batches."""
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
        loss_value = loss.item()
        stop, nonfinite = distributed.any_rank([stop_requested(), not math.isfinite(loss_value)],
                                               d, device)
        if stop:  # the step is done; the partial epoch is dropped
            raise StopRequested
        _sync(device)
        compute += time.perf_counter() - start
        if nonfinite:
            return EpochResult(float("nan"), float("nan"), samples, compute)
        total_loss += loss_value * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        samples += len(y)
    total_loss, correct, samples = distributed.total([total_loss, correct, samples], d, device)
    return EpochResult(total_loss / samples, 100.0 * correct / samples, int(samples), compute)


@torch.no_grad()
def evaluate(model, loader, loss_fn, T: int, encoding: str, device,
             d: Dist = Dist()) -> tuple[float, float]:
    """Test loss and top-1 (over all ranks' shards)."""
    distributed.sync_buffers(model, d)
    model.eval()
    total_loss, correct, samples = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(encode(x, T, encoding))
        functional.reset_net(model)
        total_loss += loss_fn(logits, y).item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        samples += len(y)
    total_loss, correct, samples = distributed.total([total_loss, correct, samples], d, device)
    return total_loss / samples, 100.0 * correct / samples


def measure(setup: "Setup", eval_T: list[int], repeats: int = 30) -> dict[str, Any]:
    """After training: ops, energy and latency at the trained T, and accuracy with all of them at
    every T of ``eval_T`` (methods with per-timestep state say how they extend to it).
    In a distributed run every rank tests its shard; rank 0 alone measures the rest."""
    model, method, cfg, energy = setup.model, setup.method, setup.cfg, setup.energy
    T, encoding, device = cfg["T"], cfg["data"]["encoding"], setup.device
    data, test_loader, loss_fn = setup.data, setup.test_loader, setup.loss_fn
    main = setup.dist.is_main
    x = loading.first_samples(data.test, cfg["eval"]["batch_size"], device)
    inference = measure_inference(model, x, T, encoding, energy, repeats) if main else None
    rows = []
    for t in sorted(set(eval_T) | {T}) if eval_T else []:
        policy = method.extend_to_T(model, t) if t != T else "trained"
        loss, top1 = evaluate(model, test_loader, loss_fn, t, encoding, device, setup.dist)
        if not main:
            continue
        at_t = inference if t == T else measure_inference(model, x, t, encoding, energy, repeats)
        flat = headline(at_t)
        rows.append({"T": t, "top1": top1, "test_loss": loss, "policy": policy,
                     **flat["metrics"], **flat["cost"]})
    if not main:
        return Outcome().measured
    return {"inference": {"T": T, **inference}, "eval_T": rows, "headline": headline(inference)}


def _summary(history: list[dict[str, Any]]) -> dict[str, Any]:
    tested = [h for h in history if h.get("test_top1") is not None]
    if not tested:
        return {"top1": None, "top1_best": None, "top1_best_epoch": None, "test_loss": None}
    best = max(tested, key=lambda h: h["test_top1"])
    return {"top1": tested[-1]["test_top1"], "top1_best": best["test_top1"],
            "top1_best_epoch": best["epoch"], "test_loss": tested[-1]["test_loss"]}


@dataclass
class Setup:
    """Everything a run needs, built and checked before any training."""

    method_cls: type[Method]
    params: Any
    method: Method
    cfg: dict[str, Any]
    energy: EnergyModel
    device: torch.device
    out_dir: Path
    data: Any
    model: nn.Module
    precision: Precision
    optimizer: torch.optim.Optimizer
    schedule: Any
    loss_fn: nn.Module
    probe: Probe
    train_loader: Iterable  # batches of (x, y): a TensorLoader or a DataLoader
    test_loader: Iterable
    generator: torch.Generator
    checkpoint: Path
    dist: Dist
    train_model: nn.Module  # what training steps call: the DDP wrapper, or model itself


@dataclass
class Outcome:
    status: str = "ok"
    error: str | None = None
    start_epoch: int = 0
    resumed_from: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    compute_s: float = 0.0
    samples: int = 0
    timers: dict[str, float] = field(default_factory=lambda: {"adapt_s": 0.0,
                                                              "diagnostics_s": 0.0})
    measured: dict[str, Any] = field(default_factory=lambda: {"inference": None, "eval_T": [],
                                                              "headline": {}})

    def timed(self, name: str, fn, *args):
        start = time.perf_counter()
        result = fn(*args)
        self.timers[name] += time.perf_counter() - start
        return result


def _check_request(req: RunRequest) -> None:
    if req.T is not None and req.T < 1:
        raise UsageError(f"--T must be >= 1, got {req.T}")
    if req.diag_every < 0:
        raise UsageError(f"--diag-every must be >= 0, got {req.diag_every}")
    if req.threads is not None and req.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {req.threads}")
    if any(t < 1 for t in req.eval_T) or req.latency_repeats < 1:
        raise UsageError(f"--eval-T values and --latency-repeats must be >= 1, got "
                         f"{req.eval_T} and {req.latency_repeats}")


def _resolve(req: RunRequest, method_cls: type[Method]) -> dict[str, Any]:
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
    return cfg


def prepare(req: RunRequest) -> Setup:
    """Check the request, then build data, model, method, optimizer and loaders."""
    _check_request(req)
    method_cls = load_method(req.method)
    params = parse_params(method_cls, req.params)
    energy = EnergyModel.parse(req.energy)
    cfg = _resolve(req, method_cls)
    if req.threads is not None:
        torch.set_num_threads(req.threads)
    dist_info, device = distributed.join(pick_device(req.device))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    out_dir = rec.ensure_writable(Path(req.out_dir))

    seed_everything(req.seed)
    data = _build_data_once(req, cfg, dist_info)
    data.train, data.test = (loading.on_device(d, device) for d in (data.train, data.test))
    model = build_model(cfg["model"], cfg["neuron"], data.input_shape, data.num_classes)
    train_cfg, T, encoding = cfg["train"], cfg["T"], cfg["data"]["encoding"]
    method = method_cls(params)
    method.attach(model, T)
    check_backend(cfg["neuron"]["backend"], cfg["neuron"]["require_fused"], device)
    precision = Precision.for_device(train_cfg, device)
    model.to(device, memory_format=torch.channels_last if precision.channels_last else
             torch.preserve_format)
    optimizer = make_optimizer(model, train_cfg, method)
    loss_fn = make_loss(train_cfg)
    probe = Probe.from_dataset(data.train, train_cfg["batch_size"], T, encoding, loss_fn,
                               method.aux_loss, device)
    workers = loading.resolve_workers(train_cfg["workers"])
    generator = torch.Generator().manual_seed(req.seed)
    train_loader = loading.train_batches(
        data.train, distributed.rank_batch(train_cfg["batch_size"], dist_info), generator,
        workers, train_cfg["drop_last"], dist_info.rank, dist_info.world_size)
    test_loader = loading.test_batches(
        loading.shard(data.test, dist_info.rank, dist_info.world_size),
        cfg["eval"]["batch_size"], workers)
    data.meta["loader"] = loading.describe(data.train, workers)
    ckpt = checkpoint.checkpoint_path(out_dir, cfg, method_cls.name, dataclasses.asdict(params),
                                      req.seed, req.protocol)
    if req.resume and not ckpt.is_file():
        raise UserError(f"--resume: no checkpoint for this configuration in {out_dir} "
                        f"(expected {ckpt.name})")
    return Setup(method_cls, params, method, cfg, energy, device, out_dir, data, model,
                 precision, optimizer, make_schedule(optimizer, train_cfg), loss_fn, probe,
                 train_loader, test_loader, generator, ckpt, dist_info,
                 distributed.wrap(model, dist_info, device))


def _build_data_once(req: RunRequest, cfg: dict[str, Any], d: Dist):
    """The datasets; in a distributed run rank 0 builds (and downloads) first, then the rest."""
    context = DataContext.resolve(req.data_dir, req.download, cfg["T"])
    if not d.is_main:
        distributed.barrier(d)
    data = build_data(cfg["data"], context)
    if d.is_main:
        distributed.barrier(d)
    return data


def train_and_measure(req: RunRequest, setup: Setup, reporter: Reporter) -> Outcome:
    """The epochs (schedule hooks, searches, training, testing, diagnostics), then the
    measurements. Errors and interrupts end the run but keep what was measured."""
    out, epochs = Outcome(), setup.cfg["train"]["epochs"]
    T, encoding = setup.cfg["T"], setup.cfg["data"]["encoding"]
    if req.resume:
        _restore(setup, out)
    reporter.start(epochs)
    try:
        for epoch in range(out.start_epoch, epochs):
            epoch_start = time.perf_counter()
            if isinstance(getattr(setup.train_loader, "sampler", None), DistributedSampler):
                setup.train_loader.sampler.set_epoch(epoch)
            distributed.sync_buffers(setup.model, setup.dist)
            setup.method.on_epoch_start(setup.model, epoch, epochs)
            out.timed("adapt_s", setup.method.adapt, setup.model, epoch, setup.probe)
            lr = setup.optimizer.param_groups[0]["lr"]
            result = train_epoch(setup.train_model, setup.method,
                                 setup.train_loader, setup.optimizer, setup.loss_fn, T, encoding,
                                 setup.device, setup.precision, setup.dist)
            out.compute_s += result.compute_s
            out.samples += result.samples
            entry = {"epoch": epoch + 1, "lr": lr, "train_loss": result.loss,
                     "train_top1": result.top1}
            if not math.isfinite(result.loss):
                out.status = "diverged"
                entry.update(train_loss=None, train_top1=None, test_loss=None, test_top1=None)
            else:
                entry["test_loss"], entry["test_top1"] = evaluate(
                    setup.model, setup.test_loader, setup.loss_fn, T, encoding, setup.device,
                    setup.dist)
            entry["epoch_time_s"] = time.perf_counter() - epoch_start
            out.history.append(entry)
            reporter.epoch(entry)
            if out.status == "diverged":
                break
            if setup.dist.is_main and (epoch + 1 == epochs or
                                       (req.diag_every and (epoch + 1) % req.diag_every == 0)):
                out.snapshots.append(out.timed("diagnostics_s", diagnose, setup.model,
                                               setup.probe, epoch + 1))
            if setup.schedule is not None:
                setup.schedule.step()
            if setup.dist.is_main:
                _save(setup, out, epoch + 1)
        if out.status == "ok":
            out.measured = measure(setup, req.eval_T, req.latency_repeats)
    except (KeyboardInterrupt, StopRequested):
        out.status = "interrupted"
    except Exception as exc:  # keep what was measured; the error goes into the record
        out.status, out.error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        reporter.close()
    return out


def _save(setup: Setup, out: Outcome, epochs_done: int) -> None:
    checkpoint.save(setup.checkpoint, {
        "epochs_done": epochs_done, "model": setup.model.state_dict(),
        "optimizer": setup.optimizer.state_dict(),
        "schedule": setup.schedule.state_dict() if setup.schedule is not None else None,
        "rng": checkpoint.rng_states(setup.generator), "history": out.history,
        "snapshots": out.snapshots, "compute_s": out.compute_s, "samples": out.samples,
        "timers": out.timers})


def _restore(setup: Setup, out: Outcome) -> None:
    state = checkpoint.load(setup.checkpoint)
    setup.model.load_state_dict(state["model"])
    setup.optimizer.load_state_dict(state["optimizer"])
    if setup.schedule is not None:
        setup.schedule.load_state_dict(state["schedule"])
    checkpoint.restore_rng(state["rng"], setup.generator)
    out.start_epoch, out.history, out.snapshots = (state["epochs_done"], state["history"],
                                                   state["snapshots"])
    out.compute_s, out.samples, out.timers = state["compute_s"], state["samples"], state["timers"]
    out.resumed_from = setup.checkpoint.name


def make_record(req: RunRequest, setup: Setup, out: Outcome, wall_s: float) -> dict[str, Any]:
    cfg, cls, history = setup.cfg, setup.method_cls, out.history
    headline = out.measured["headline"]
    return {
        "schema": rec.SCHEMA,
        "run_id": rec.new_run_id(cfg["name"], cls.name, cfg["T"], req.seed, req.protocol),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "status": out.status,
        "error": out.error,
        "resumed_from": out.resumed_from,
        "checkpoint": setup.checkpoint.name if setup.checkpoint.is_file() else None,
        "method": {"name": cls.name, "params": dataclasses.asdict(setup.params),
                   "fidelity": cls.fidelity, "kinds": list(cls.kinds), "citation": cls.citation,
                   "source_sha256": method_source_sha256(cls)},
        "task": {"name": cfg["name"], "version": cfg["version"], "config": cfg,
                 "sha256": config_sha256(cfg)},
        "T": cfg["T"],
        "seed": req.seed,
        "protocol": req.protocol,
        "data": setup.data.meta,
        "model": {"arch": cfg["model"]["arch"],
                  "parameters": sum(p.numel() for p in setup.model.parameters()),
                  "neuron_layers": len(neurons(setup.model))},
        "precision": dataclasses.asdict(setup.precision),  # what was in effect (CUDA only)
        "distributed": {**setup.dist.describe(),
                        "batch_size_per_rank": setup.train_loader.batch_size},
        "paper_overlay": cls.paper_overlay(cfg["data"]["dataset"])
        if req.protocol == "paper" else {},
        "metrics": {**_summary(history), **headline.get("metrics", {})},
        "history": history,
        "diagnostics": {"probe": setup.probe.describe(), "snapshots": out.snapshots},
        "inference": out.measured["inference"],
        "eval_T": out.measured["eval_T"],
        "cost": {"wall_s": wall_s,
                 "train_compute_s": out.compute_s,
                 "train_samples_per_s": out.samples / out.compute_s if out.compute_s > 0
                 else None,
                 "epochs_completed": len(history), **out.timers,
                 "epoch_time_s": statistics.fmean(h["epoch_time_s"] for h in history)
                 if history else None,
                 "peak_memory_mb": peak_memory_mb(setup.device),
                 **headline.get("cost", {})},
        "env": rec.capture_env(setup.device, used_backend(setup.model) or cfg["neuron"]["backend"]),
    }


def run(req: RunRequest, reporter: Reporter | None = None) -> tuple[dict[str, Any], Path | None]:
    """Train and test one (method, task, T, seed, protocol); returns the record and its path.
    Nothing is written when the request is wrong; a run that fails still writes its record.
    Under torchrun only rank 0 reports and writes (the other ranks get the path None)."""
    wall_start = time.perf_counter()
    setup = prepare(req)
    try:
        if not setup.dist.is_main:
            reporter = SilentReporter()
        with checkpoint.graceful_stop():
            outcome = train_and_measure(req, setup, reporter or SilentReporter())
        record = make_record(req, setup, outcome, time.perf_counter() - wall_start)
        path = rec.write_record(record, setup.out_dir) if setup.dist.is_main else None
    finally:
        distributed.leave(setup.dist)
    if outcome.status == "failed":
        where = f"record written: {path}" if path else f"rank {setup.dist.rank}"
        raise UserError(f"training failed: {outcome.error} ({where})")
    return record, path
