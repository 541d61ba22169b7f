"""The epochs (schedule hooks, searches, training, testing, diagnostics, checkpoints), then the
measurements at the trained T and at ``--eval-T``."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from spikingjelly.activation_based import functional
from torch.utils.data import DistributedSampler

from .. import checkpoint, distributed
from ..checkpoint import StopRequested, stop_requested
from ..data import encode, loading
from ..distributed import Dist
from ..errors import UserError
from ..measure.diagnostics import diagnose
from ..measure.inference import headline, measure_inference
from ..method import Method
from ..progress import Reporter
from .recipe import Precision
from .setup import RunRequest, Setup




@dataclass
class EpochResult:
    loss: float
    top1: float
    samples: int
    compute_s: float


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_epoch(model, method: Method, loader, optimizer, loss_fn, T: int, encoding: str,
                device: torch.device, precision: Precision | None = None,
                d: Dist = Dist(), on_batch: Callable | None = None) -> EpochResult:
    """One pass over the training data (this rank's shard; loss, top-1 and samples are summed
    over the ranks). compute_s excludes the time spent loading batches. ``on_batch(done,
    total, loss, top1, lr)`` hears after every step."""
    total_steps = len(loader) if hasattr(loader, "__len__") else None
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
        if on_batch is not None:
            on_batch(step + 1, total_steps, total_loss / samples, 100.0 * correct / samples,
                     optimizer.param_groups[0]["lr"], samples)
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
        stop_point(setup)
        policy = method.extend_to_T(model, t) if t != T else "trained"
        loss, top1 = evaluate(model, test_loader, loss_fn, t, encoding, device, setup.dist)
        if not main:
            continue
        at_t = inference if t == T else measure_inference(model, x, t, encoding, energy, repeats)
        flat = headline(at_t)
        rows.append({"T": t, "top1": top1, "test_loss": loss, "policy": policy,
                     **flat["metrics"], **flat["cost"]})
    stop_point(setup)
    if not main:
        return Outcome().measured
    return {"inference": {"T": T, **inference}, "eval_T": rows, "headline": headline(inference)}


def stop_point(setup: Setup) -> None:
    """Between phases after training: a stop signal (on any rank) ends the run here."""
    if distributed.any_rank([stop_requested()], setup.dist, setup.device)[0]:
        raise StopRequested


@dataclass
class Outcome:
    status: str = "ok"
    error: str | None = None
    exception: BaseException | None = None  # what ended a failed run
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


def train_and_measure(req: RunRequest, setup: Setup, reporter: Reporter) -> Outcome:
    """The epochs (schedule hooks, searches, training, testing, diagnostics), then the
    measurements. Errors and interrupts end the run but keep what was measured."""
    out, epochs = Outcome(), setup.cfg["train"]["epochs"]
    T, encoding = setup.cfg["T"], setup.cfg["data"]["encoding"]
    if setup.resume:
        _restore(setup, out)
        reporter.note(f"resuming after epoch {out.start_epoch} of {epochs} from "
                      f"{setup.checkpoint.name}")
    elif req.resume:
        reporter.note(f"--resume: no checkpoint {setup.checkpoint.name} yet (the run stopped "
                      f"before its first epoch ended): starting from the beginning")
    overlay = setup.method_cls.paper_overlay(setup.cfg["data"]["dataset"])
    if req.protocol == "paper":
        reporter.note("paper protocol: " + (", ".join(f"{k}={v}" for k, v in overlay.items())
                                            or "the method's recipe sets nothing here"))
    reporter.start(epochs, out.start_epoch)
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
                                 setup.device, setup.precision, setup.dist, reporter.batch)
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
                reporter.phase("gradient diagnostics")
                out.snapshots.append(out.timed("diagnostics_s", diagnose, setup.model,
                                               setup.probe, epoch + 1, req.fd_weights))
            if setup.schedule is not None:
                setup.schedule.step()
            if setup.dist.is_main:
                _save(setup, out, epoch + 1)
        if out.status == "ok":
            stop_point(setup)
            reporter.phase("operations, energy and latency"
                           + " at every --eval-T" * bool(req.eval_T))
            out.measured = measure(setup, req.eval_T, req.latency_repeats)
    except (KeyboardInterrupt, StopRequested):
        out.status = "interrupted"
    except Exception as exc:  # keep what was measured; the error goes into the record
        if stop_requested():  # e.g. loader workers ended by the same signal
            out.status = "interrupted"
        else:
            out.status, out.error, out.exception = "failed", f"{type(exc).__name__}: {exc}", exc
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
        "timers": out.timers, "identity": setup.identity})


def _restore(setup: Setup, out: Outcome) -> None:
    state = checkpoint.check(setup.checkpoint, setup.identity, setup.cfg["train"]["epochs"])
    try:
        setup.model.load_state_dict(state["model"])
        setup.optimizer.load_state_dict(state["optimizer"])
        if setup.schedule is not None:
            setup.schedule.load_state_dict(state["schedule"])
        checkpoint.restore_rng(state["rng"], setup.generator)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise UserError(f"--resume: {setup.checkpoint} does not fit this run: "
                        f"{str(exc).splitlines()[0]}") from None
    out.start_epoch, out.history, out.snapshots = (state["epochs_done"], state["history"],
                                                   state["snapshots"])
    out.compute_s, out.samples, out.timers = state["compute_s"], state["samples"], state["timers"]
    out.resumed_from = setup.checkpoint.name
