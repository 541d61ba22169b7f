"""A run's request and its setup: everything built and checked before any training."""
from __future__ import annotations

import dataclasses
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from .. import checkpoint, distributed
from .. import record as rec
from ..files import ensure_writable
from ..config import resolve_task
from ..data import build_data, loading, step_shape
from ..data.location import DataContext
from ..distributed import Dist
from ..errors import UsageError, UserError, innermost_frame
from ..measure.ops import EnergyModel
from ..measure.probe import Probe
from ..method import Method
from ..models import build_model
from ..neuron.node import check_backend
from ..params import parse_params
from ..registry import load_method, method_files, method_source_sha256
from .logs import check_logs
from .preflight import check_data, check_model_takes_data
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
    fd_weights: int = 64  # first-layer weights in the diagnostics' FD cosine (0: none)
    data_dir: Path | None = None  # else $SGBENCH_DATA, else the user cache folder
    download: bool = False
    threads: int | None = None  # torch's intra-op threads (None: torch's default)
    log: list[str] = field(default_factory=list)  # per-epoch logs beside the record: csv, tb


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
    identity: dict[str, Any]  # the run's identity, which its checkpoint stores
    resume: bool  # --resume, and a checkpoint to resume from exists
    lock: Any  # checkpoint.RunLock of this run key in out_dir, released when the run ends
    dist: Dist
    train_model: nn.Module  # what training steps call: the DDP wrapper, or model itself


MAX_T = 1024  # timesteps: far beyond any published SNN, and T x batch x layer must fit memory
MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit
MAX_EPOCHS = 100_000


def _check_request(req: RunRequest) -> None:
    """Every value of the request against its range, before anything is built or written."""
    if req.T is not None and not 1 <= req.T <= MAX_T:
        raise UsageError(f"--T must lie in [1, {MAX_T}], got {req.T}")
    if not 0 <= req.seed <= MAX_SEED:
        raise UsageError(f"--seed must lie in [0, {MAX_SEED}], got {req.seed}")
    if req.epochs is not None and not 1 <= req.epochs <= MAX_EPOCHS:
        raise UsageError(f"--epochs must lie in [1, {MAX_EPOCHS}], got {req.epochs}")
    check_logs(req.log)
    if req.diag_every < 0 or req.fd_weights < 0:
        raise UsageError(f"--diag-every and --fd-weights must be >= 0, got {req.diag_every} "
                         f"and {req.fd_weights}")
    if req.threads is not None and not 1 <= req.threads <= 1024:
        raise UsageError(f"--threads must lie in [1, 1024], got {req.threads}")
    if any(not 1 <= t <= MAX_T for t in req.eval_T) or not 1 <= req.latency_repeats <= 10**6:
        raise UsageError(f"--eval-T values must lie in [1, {MAX_T}] and --latency-repeats in "
                         f"[1, 10^6], got {req.eval_T} and {req.latency_repeats}")


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


class AlreadyFinished(Exception):
    """This configuration and seed already has a finished record in the output folder."""

    def __init__(self, path: Path, record: dict[str, Any]):
        super().__init__(str(path))
        self.path, self.record = path, record


def finished_record(out_dir: Path, key: str) -> tuple[Path, dict[str, Any]] | None:
    """The finished (ok or diverged) record of run ``key`` in ``out_dir``, if there is one."""
    if not out_dir.is_dir():
        return None
    for path in sorted(out_dir.glob("*.json")):
        try:
            record = rec.read_record(path)
        except (UserError, rec.NotARecord):
            continue
        if is_run(record, key) and record["status"] in ("ok", "diverged"):
            return path, record
    return None


def is_run(record: dict[str, Any], key: str) -> bool:
    """Whether ``record`` is of run ``key`` (older records name only their checkpoint)."""
    return record.get("run_key") == key or record.get("checkpoint") == f"{key}{checkpoint.SUFFIX}"


def _identity(req: RunRequest, method_cls: type[Method], params, cfg: dict[str, Any]
              ) -> dict[str, Any]:
    return checkpoint.run_identity(cfg, method_cls.name, dataclasses.asdict(params),
                                   method_source_sha256(method_cls), req.seed, req.protocol)


def run_key(req: RunRequest) -> str:
    """The key ``sgbench run`` gives this request's run (its checkpoint's stem): a record of
    another key is another version of the configuration (a method or task file edited since)."""
    method_cls = load_method(req.method)
    params = parse_params(method_cls, req.params)
    cfg = _resolve(req, method_cls)
    path = checkpoint.checkpoint_path(Path("."), cfg, _identity(req, method_cls, params, cfg))
    return checkpoint.run_key_of(path)


def prepare(req: RunRequest) -> Setup:
    """Check the request, then build data, model, method, optimizer and loaders."""
    _check_request(req)
    method_cls = load_method(req.method)
    params = parse_params(method_cls, req.params)
    energy = EnergyModel.parse(req.energy)
    cfg = _resolve(req, method_cls)
    out_dir = ensure_writable(Path(req.out_dir))
    identity = _identity(req, method_cls, params, cfg)
    ckpt = checkpoint.checkpoint_path(out_dir, cfg, identity)
    key = checkpoint.run_key_of(ckpt)
    lock = checkpoint.RunLock(out_dir / f"{key}.lock")
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 writes
        lock.acquire()
    try:
        return _prepare_locked(req, method_cls, params, energy, cfg, out_dir, ckpt, identity,
                               lock)
    except BaseException:
        lock.release()
        raise


def _prepare_locked(req, method_cls, params, energy, cfg, out_dir, ckpt, identity, lock):
    done = finished_record(out_dir, checkpoint.run_key_of(ckpt))
    if done is not None:  # checked holding the lock: two runs never both train
        raise AlreadyFinished(*done)
    resume = req.resume and ckpt.is_file()  # none yet (a stop in epoch 1): start from the start
    if resume:
        checkpoint.check(ckpt, identity, cfg["train"]["epochs"])
    if req.threads is not None:
        torch.set_num_threads(req.threads)
    dist_info, device = distributed.join(pick_device(req.device))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seed_everything(req.seed)
    data = _build_data_once(req, cfg, dist_info)
    data.train, data.test = (loading.on_device(d, device) for d in (data.train, data.test))
    check_data(data)
    model = build_model(cfg["model"], cfg["neuron"],
                        step_shape(data.input_shape, cfg["data"]["encoding"]), data.num_classes)
    method = plugin_call(method_cls, _attached, method_cls, params, model, cfg["T"])
    check_model_takes_data(model.to(device), data, cfg, device)
    check_backend(cfg["neuron"]["backend"], cfg["neuron"]["require_fused"], device)
    precision = Precision.for_device(cfg["train"], device)
    precision.place(model, device)
    optimizer = make_optimizer(model, cfg["train"], method)
    loss_fn = make_loss(cfg["train"], model)
    probe = Probe.for_run(cfg, data.train, loss_fn, method.aux_loss, device)
    generator = torch.Generator().manual_seed(req.seed)
    train_loader, test_loader = _loaders(cfg, data, generator, dist_info)
    return Setup(method_cls, params, method, cfg, energy, device, out_dir, data, model,
                 precision, optimizer, make_schedule(optimizer, cfg["train"]), loss_fn, probe,
                 train_loader, test_loader, generator, ckpt, identity, resume, lock, dist_info,
                 distributed.wrap(model, dist_info, device))


def _attached(method_cls: type[Method], params: Any, model: nn.Module, T: int) -> Method:
    method = method_cls(params)
    method.attach(model, T)
    return method


def plugin_call(method_cls: type[Method], fn, *args):
    """``fn(*args)``, where an error in the method's own code becomes one line that names the
    method and the file and line it came from."""
    try:
        return fn(*args)
    except UserError:
        raise
    except Exception as exc:
        files = {str(f) for f in method_files(method_cls)}
        frame = innermost_frame(exc, files)
        at = f" at {frame}" if frame else ""
        raise UserError(f"method '{method_cls.name}' failed while setting up: "
                        f"{type(exc).__name__}: {exc}{at} (--debug shows the traceback)") \
            from exc


def _loaders(cfg: dict[str, Any], data, generator: torch.Generator, d: Dist):
    workers = loading.resolve_workers(cfg["train"]["workers"])
    train_loader = loading.train_batches(
        data.train, distributed.rank_batch(cfg["train"]["batch_size"], d), generator, workers,
        cfg["train"]["drop_last"], d.rank, d.world_size)
    test_loader = loading.test_batches(loading.shard(data.test, d.rank, d.world_size),
                                       cfg["eval"]["batch_size"], workers)
    data.meta["loader"] = loading.describe(data.train, workers)
    return train_loader, test_loader


def _build_data_once(req: RunRequest, cfg: dict[str, Any], d: Dist):
    """The datasets; in a distributed run rank 0 builds (and downloads) first, then the rest."""
    context = DataContext.resolve(req.data_dir, req.download, cfg["T"])
    if not d.is_main:
        distributed.barrier(d)
    data = build_data(cfg["data"], context)
    if d.is_main:
        distributed.barrier(d)
    return data
