"""Checkpoints after every epoch, graceful stops on SIGINT/SIGTERM, and resuming.

A checkpoint holds the model, optimizer and schedule states (a method's state lives in the model's
buffers and parameters), every RNG state (python, numpy, torch, the training loader's shuffle
generator) and the run's history so far. It is written atomically next to the records, under a
name fixed by the run's configuration, so ``--resume`` finds it. On a stop signal the current
training step finishes, the partial epoch is dropped, and the run ends ``interrupted``; resuming
repeats that epoch from the last checkpoint, so on CPU the final metrics equal a straight run's.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import math
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
from .files import check_opened, check_target, current_umask


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


def run_identity(cfg: dict[str, Any], method: str, params: dict[str, Any], source: str,
                 seed: int, protocol: str) -> dict[str, Any]:
    """What makes a run this run: its resolved task config, the method's name, parameters and
    source hash, the seed and the protocol. A checkpoint stores it, and resumes only the same."""
    from .config import config_sha256

    return {"config_sha256": config_sha256(cfg), "method": method,
            "params": json.dumps(params, sort_keys=True, default=str), "source_sha256": source,
            "seed": seed, "protocol": protocol}


def checkpoint_path(out_dir: Path, cfg: dict[str, Any], identity: dict[str, Any]) -> Path:
    """Where the run of this identity keeps its checkpoint; its stem is the run's key
    (``run_key`` in the record), so a method whose source changed is a new run."""
    from .files import safe_name

    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    name = safe_name(f"{cfg['name']}_{identity['method']}_T{cfg['T']}_s{identity['seed']}_"
                     f"{identity['protocol']}_{digest}")
    return out_dir / f"{name}{SUFFIX}"


def run_key_of(checkpoint: Path) -> str:
    """The run's key: its checkpoint's name without the suffix."""
    return checkpoint.name[:-len(SUFFIX)]


class RunLock:
    """One process at a time runs a configuration and seed into a folder: an exclusive
    ``flock`` on ``<run_key>.lock``, which holds the holder's pid for the message. The kernel
    drops the lock when its process ends, so a lock left by a killed run is simply taken, and no
    two processes can both take over a stale one. Two identical runs started together: the
    second stops with one line."""

    def __init__(self, path: Path):
        self.path, self.fd = path, None

    def acquire(self) -> None:
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _pid_in(fd)
                os.close(fd)
                who = f"another process (pid {holder})" if holder else "another process"
                raise UserError(f"{who} is running this configuration and seed into "
                                f"{self.path.parent}; wait for it, or use another --out") from None
            if self._still_named(fd):  # not unlinked by a holder that finished meanwhile
                self.fd = fd
                self._write_pid()
                return
            os.close(fd)

    def _open(self) -> int:
        """The lock file, never through a link (O_NOFOLLOW), never a FIFO or device (opened
        without blocking, then checked) or a file with other hard links (check_target)."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as exc:
            raise UserError(f"cannot take the run lock {self.path}: {exc.strerror}") from None
        return check_opened(fd, self.path, "take the run lock")

    def _write_pid(self) -> None:
        try:
            os.ftruncate(self.fd, 0)
            os.write(self.fd, str(os.getpid()).encode())
        except OSError as exc:  # a full disk: the lock is held all the same, but say it
            self.release()
            raise UserError(f"cannot write the run lock {self.path}: {exc.strerror or exc}"
                            ) from None

    def _still_named(self, fd: int) -> bool:
        try:
            named = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)

    def release(self) -> None:
        if self.fd is not None:
            try:
                self.path.unlink(missing_ok=True)  # unlinked before unlocked: see _still_named
            except OSError:  # its folder is gone or replaced: nothing left to release
                pass
            os.close(self.fd)
            self.fd = None


def _pid_in(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def save(path: Path, state: dict[str, Any]) -> None:
    check_target(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".ckpt.pt")
    os.fchmod(fd, 0o666 & ~current_umask())  # as the records (mkstemp: 0600)
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
        "identity", "compute_s", "samples", "timers")


def load(path: Path) -> dict[str, Any]:
    """A checkpoint sgbench wrote, read with torch's safe (weights-only) loader."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or not written by sgbench
        raise UserError(f"cannot read checkpoint {path}: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    missing = [k for k in KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise UserError(f"{path} is not a checkpoint of this sgbench's runs (no "
                        f"{', '.join(missing)}): run without --resume")
    return state


def check(path: Path, identity: dict[str, Any], epochs: int) -> dict[str, Any]:
    """The checkpoint to resume from: it exists, reads, belongs to this very run (every field of
    its identity equal) and holds values a run can continue from."""
    if not path.is_file():
        raise UserError(f"--resume: no checkpoint for this configuration in {path.parent} "
                        f"(expected {path.name})")
    state = load(path)
    theirs = state["identity"] if isinstance(state["identity"], dict) else {}
    differ = [k for k in identity if theirs.get(k) != identity[k]]
    if differ:
        raise UserError(f"--resume: {path} belongs to another run (its {', '.join(differ)} "
                        f"differ{'s' * (len(differ) == 1)}); run without --resume, or with the "
                        f"options and method version it was started with")
    problem = _content_problem(state, epochs)
    if problem:
        raise UserError(f"--resume: {path} cannot be resumed: {problem}")
    return state


def _content_problem(state: dict[str, Any], epochs: int) -> str | None:
    """What makes a checkpoint's contents unusable: types, ranges, finiteness."""
    done, history = state["epochs_done"], state["history"]
    if isinstance(done, bool) or not isinstance(done, int) or not 0 <= done <= epochs:
        return f"epochs_done is {done!r}, not an epoch count in [0, {epochs}]"
    if not isinstance(history, list) or len(history) != done or not all(
            isinstance(h, dict) for h in history):
        return f"its history does not hold one entry per finished epoch ({done})"
    if not isinstance(state["snapshots"], list) or not isinstance(state["timers"], dict):
        return "its diagnostics or timers are not what sgbench writes"
    for key in ("compute_s", "samples"):
        value = state[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not \
                math.isfinite(value) or value < 0:
            return f"{key} is {value!r}"
    model = state["model"]
    if not isinstance(model, dict) or not all(isinstance(v, torch.Tensor) for v in
                                              model.values()):
        return "its model state is not a set of tensors"
    bad = [k for k, v in model.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    return f"non-finite weights in {', '.join(bad[:3])}" if bad else None
