"""The one training runner: resolve, build, train and test per epoch, measure, write the record.

- ``setup``: the request and everything built before training (``prepare``);
- ``recipe``: optimizer, schedule, loss and precision of a task's ``train`` section;
- ``loop``: the epochs, with checkpoints and graceful stops, then the measurements;
- ``result``: the record.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .. import checkpoint, distributed
from .. import record as rec
from ..errors import UserError, innermost_frame
from ..registry import method_files
from ..progress import Reporter, SilentReporter
from .logs import with_logs
from .loop import evaluate, measure, train_and_measure, train_epoch
from .recipe import Precision, make_loss, make_optimizer, make_schedule, param_groups
from .result import make_record
from .setup import (AlreadyFinished, RunRequest, Setup, pick_device, prepare,
                    seed_everything)

__all__ = ["AlreadyFinished", "Precision", "Reporter", "RunRequest", "Setup", "SilentReporter",
           "evaluate", "make_loss", "make_optimizer", "make_record", "make_schedule", "measure",
           "param_groups", "pick_device", "prepare", "run", "seed_everything",
           "train_and_measure", "train_epoch"]


def run(req: RunRequest, reporter: Reporter | None = None) -> tuple[dict[str, Any], Path | None]:
    """Train and test one (method, task, T, seed, protocol); returns the record and its path.
    Nothing is written when the request is wrong; a run that fails still writes its record.
    Under torchrun only rank 0 reports and writes (the other ranks get the path None)."""
    wall_start = time.perf_counter()
    setup = prepare(req)
    try:
        reporter = with_logs(reporter or SilentReporter(), req.log, setup.out_dir,
                             checkpoint.run_key_of(setup.checkpoint)) \
            if setup.dist.is_main else SilentReporter()
        with checkpoint.graceful_stop():  # the handlers stay until the record is on disk
            outcome = train_and_measure(req, setup, reporter)
            with checkpoint.shielded():
                record = make_record(req, setup, outcome, time.perf_counter() - wall_start)
                path = rec.save_record(record, setup.out_dir) if setup.dist.is_main else None
    finally:
        setup.lock.release()
        distributed.leave(setup.dist)
    if outcome.status == "failed":
        raise UserError(_failure(outcome, setup, path)) from outcome.exception
    return record, path


def _failure(outcome, setup: Setup, path: Path | None) -> str:
    """One line: the error, where in the method's own code it happened, where the record is."""
    files = {str(Path(f)) for f in method_files(setup.method_cls)}
    frame = innermost_frame(outcome.exception, files) if outcome.exception else None
    at = f" at {frame}" if frame else ""
    where = f"record written: {path}" if path else f"rank {setup.dist.rank}"
    return f"training failed: {outcome.error}{at} ({where}; --debug shows the traceback)"
