"""How a run tells how it is doing (the CLI's progress bars implement it; imports no torch)."""
from __future__ import annotations

from typing import Any


class Reporter:
    """Where a run tells how it is doing; every hook is optional (this one says nothing)."""

    def start(self, epochs: int, first: int = 0) -> None:
        """Training begins at 0-based epoch ``first`` (after a resume) of ``epochs``."""

    def note(self, text: str) -> None:
        """Something the user should know before training (a resume, a paper overlay)."""

    def batch(self, done: int, total: int | None, loss: float, top1: float, lr: float) -> None:
        """After each training step: steps done of the epoch, running loss and top-1, lr."""

    def epoch(self, entry: dict[str, Any]) -> None:
        """After each epoch, with its history entry."""

    def phase(self, name: str) -> None:
        """A step after training begins (diagnostics, operations and energy, latency)."""

    def close(self) -> None:
        """The run is over (whatever its status)."""


SilentReporter = Reporter
