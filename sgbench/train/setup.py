"""A run's request and its setup: everything built and checked before any training."""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from .. import checkpoint, distributed
from .. import record as rec
from ..config import resolve_task
from ..data import build_data, loading
from ..data.location import DataContext
from ..distributed import Dist
from ..errors import UsageError, UserError
from ..measure.ops import EnergyModel
from ..measure.probe import Probe
from ..method import Method
from ..models import build_model
from ..neuron.node import check_backend
from ..params import parse_params
from ..registry import load_method
from .recipe import Precision, make_loss, make_optimizer, make_schedule


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
