"""How a run tells how it is doing (the CLI's progress bars implement it; imports no torch)."""
from __future__ import annotations

from typing import Any


class Reporter:
    """Where a run tells how it is doing; every hook is optional (this one says nothing)."""

    def start(self, epochs: int, first: int = 0) -> None:
        """Training begins at 0-based epoch ``first`` (after a resume) of ``epochs``."""

    def note(self, text: str) -> None:
        """Something the user should know before training (a resume, a paper overlay)."""

    def batch(self, done: int, total: int | None, loss: float, top1: float, lr: float,
              samples: int | None = None) -> None:
        """After each training step: steps done of the epoch, running loss and top-1, lr, and
        the samples seen this epoch."""

    def epoch(self, entry: dict[str, Any]) -> None:
        """After each epoch, with its history entry."""

    def phase(self, name: str) -> None:
        """A step after training begins (diagnostics, operations and energy, latency)."""

    def close(self) -> None:
        """The run is over (whatever its status)."""


SilentReporter = Reporter


PROGRESS_SECONDS = 10.0  # a plain progress line at most this often ($SGBENCH_PROGRESS_SECONDS)


def progress_interval() -> float:
    """Seconds between progress lines in a log file: $SGBENCH_PROGRESS_SECONDS if it is a
    positive number, else PROGRESS_SECONDS."""
    import os

    try:
        every = float(os.environ.get("SGBENCH_PROGRESS_SECONDS", PROGRESS_SECONDS))
    except ValueError:
        return PROGRESS_SECONDS
    return every if every > 0 else PROGRESS_SECONDS


class PlainProgress:
    """Progress for a log file (a cluster job, nohup, CI): a line every ``every`` seconds with
    the epoch, the batch, samples/s and the ETA of the epoch and of the training."""

    def __init__(self, label: str, every: float | None = None):
        import time

        self.label, self.clock = label, time.monotonic
        self.every = progress_interval() if every is None else every
        self.epochs, self.epoch_index, self.epoch_start, self.last = 0, 0, self.clock(), 0.0

    def start(self, epochs: int, first: int) -> None:
        self.epochs, self.epoch_index = epochs, first
        self.epoch_start = self.last = self.clock()

    def next_epoch(self) -> None:
        self.epoch_index += 1
        self.epoch_start = self.last = self.clock()

    def line(self, done: int, total: int | None, loss: float, top1: float,
             samples: int | None) -> str | None:
        """The line to print now, or None before the interval has passed."""
        now = self.clock()
        if now - self.last < self.every:
            return None
        self.last = now
        spent = now - self.epoch_start
        rate = f"  {samples / spent:,.0f} samples/s" if samples and spent > 0 else ""
        where = f"batch {done}/{total}" if total else f"batch {done}"
        eta = ""
        if total and done:
            left = spent / done * (total - done)
            whole = left + spent / done * total * (self.epochs - self.epoch_index - 1)
            eta = f"  eta {hms(left)} epoch, {hms(whole)} training"
        return (f"{self.label} epoch {self.epoch_index + 1}/{self.epochs}  {where}{rate}{eta}  "
                f"loss {loss:.4f}  top-1 {top1:.2f}%")


def hms(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class GridStatus:
    """For a log file (stderr not a terminal): a line now and then while a grid of runs goes on
    (a sweep, a reference suite) with the jobs finished and running, the time spent and the
    ETA at the pace so far."""

    def __init__(self, name: str, total: int):
        import sys
        import time

        self.name, self.total, self.clock = name, total, time.monotonic
        self.start = self.last = self.clock()
        self.every = progress_interval()
        self.quiet = sys.stderr.isatty()

    def tell(self, done: int, running: int) -> None:
        import sys

        now = self.clock()
        if self.quiet or now - self.last < self.every:
            return
        self.last = now
        eta = f", eta {hms((now - self.start) / done * (self.total - done))}" if done else ""
        print(f"{self.name}: {done} of {self.total} jobs finished, {running} running, "
              f"{hms(now - self.start)} spent{eta}", file=sys.stderr, flush=True)
