"""Checkpoints after every epoch, graceful stops on SIGINT/SIGTERM, and resuming.

A checkpoint holds the model, optimizer and schedule states (a method's state lives in the model's
buffers and parameters), every RNG state (python, numpy, torch, the training loader's shuffle
generator) and the run's history so far. It is written atomically next to the records, under a
name fixed by the run's configuration, so ``--resume`` finds it. On a stop signal the current
training step finishes, the partial epoch is dropped, and the run ends ``interrupted``; resuming
repeats that epoch from the last checkpoint, so on CPU the final metrics equal a straight run's.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from .errors import UserError


class StopRequested(Exception):
    """A stop signal arrived; raised between training steps."""


_stop = threading.Event()


def stop_requested() -> bool:
    return _stop.is_set()


_shield = threading.Event()  # set while a record is being written: a second signal waits
_urgent = threading.Event()  # a second signal arrived while shielded


@contextmanager
def graceful_stop() -> Iterator[None]:
    """SIGINT/SIGTERM ask the run to stop after the current step; a second SIGINT stops at once,
    except while the record is written (``shielded``): then the run ends right after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def ask(signum, frame):
        if _stop.is_set() and signum == signal.SIGINT:
            if _shield.is_set():
                _urgent.set()
                return
            raise KeyboardInterrupt
        _stop.set()

    previous = {s: signal.signal(s, ask) for s in (signal.SIGINT, signal.SIGTERM)}
    _stop.clear(), _urgent.clear()
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _stop.clear()


@contextmanager
def shielded() -> Iterator[None]:
    """Writing what must not be lost (the record): stop signals are noted, never raised, until
    the block ends; a second SIGINT that came meanwhile is raised then."""
    _shield.set()
    try:
        yield
    finally:
        _shield.clear()
    if _urgent.is_set():
        _urgent.clear()
        raise KeyboardInterrupt


SUFFIX = ".ckpt.pt"


def checkpoint_path(out_dir: Path, cfg: dict[str, Any], method: str, params: dict[str, Any],
                    seed: int, protocol: str) -> Path:
    """Where the run of this configuration and seed keeps its checkpoint; its stem is the run's
    key (``run_key`` in the record)."""
    from .record import safe_name

    identity = json.dumps({"config": cfg, "method": method, "params": params}, sort_keys=True,
                          default=str)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:10]
    name = safe_name(f"{cfg['name']}_{method}_T{cfg['T']}_s{seed}_{protocol}_{digest}")
    return out_dir / f"{name}{SUFFIX}"


def save(path: Path, state: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".ckpt.pt")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def rng_states(generator: torch.Generator) -> dict[str, Any]:
    """Every RNG state, in types that torch's weights-only loader reads (no numpy objects)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
            "torch": torch.get_rng_state(), "loader": generator.get_state()}


def restore_rng(states: dict[str, Any], generator: torch.Generator) -> None:
    random.setstate(states["python"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    generator.set_state(states["loader"])


KEYS = ("epochs_done", "model", "optimizer", "schedule", "rng", "history", "snapshots",
        "config_sha256")


def load(path: Path) -> dict[str, Any]:
    """A checkpoint sgbench wrote, read with torch's safe (weights-only) loader."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or not written by sgbench
        raise UserError(f"cannot read checkpoint {path}: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    missing = [k for k in KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise UserError(f"{path} is not a checkpoint of sgbench run (no {', '.join(missing)})")
    return state


def check(path: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint to resume from: it exists, reads, and belongs to this configuration."""
    from .config import config_sha256

    if not path.is_file():
        raise UserError(f"--resume: no checkpoint for this configuration in {path.parent} "
                        f"(expected {path.name})")
    state = load(path)
    if state["config_sha256"] != config_sha256(cfg):
        raise UserError(f"--resume: {path} was written for another configuration of this task "
                        f"(its config sha256 differs); run without --resume, or with the "
                        f"options it was started with")
    return state
