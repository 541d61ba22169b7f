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


class StopRequested(Exception):
    """A stop signal arrived; raised between training steps."""


_stop = threading.Event()


def stop_requested() -> bool:
    return _stop.is_set()


@contextmanager
def graceful_stop() -> Iterator[None]:
    """SIGINT/SIGTERM ask the run to stop after the current step; a second SIGINT stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def ask(signum, frame):
        if _stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        _stop.set()

    previous = {s: signal.signal(s, ask) for s in (signal.SIGINT, signal.SIGTERM)}
    _stop.clear()
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _stop.clear()


def checkpoint_path(out_dir: Path, cfg: dict[str, Any], method: str, params: dict[str, Any],
                    seed: int, protocol: str) -> Path:
    identity = json.dumps({"config": cfg, "method": method, "params": params}, sort_keys=True,
                          default=str)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:10]
    return out_dir / f"{cfg['name']}_{method}_T{cfg['T']}_s{seed}_{protocol}_{digest}.ckpt.pt"


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
    return {"python": random.getstate(), "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(), "loader": generator.get_state()}


def restore_rng(states: dict[str, Any], generator: torch.Generator) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    generator.set_state(states["loader"])


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)
