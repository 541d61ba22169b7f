"""`sgbench check`: validate the published numbers, every task YAML and every run record."""
from __future__ import annotations

from pathlib import Path

from .results import published
from .config import resolve_task, task_names
from .errors import UserError
from .record import load_records
from .registry import method_names


def check(published_path: Path | None, runs: Path | None) -> tuple[list[str], dict[str, int]]:
    """All problems found, and how much was checked."""
    found: list[str] = []
    entries = published.load(published_path)
    found += published.problems(entries, set(method_names()), set(task_names()))
    for name in task_names():
        try:
            resolve_task(name)
        except UserError as exc:
            found.append(f"task {name}: {exc}")
    records = []
    if runs is not None and runs.is_dir():
        records, record_problems = load_records(runs)
        found += record_problems
    counts = {"published entries": len(entries), "tasks": len(task_names()),
              "records": len(records)}
    return found, counts
