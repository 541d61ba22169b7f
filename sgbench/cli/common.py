"""What every command shares: the consoles, one error style, and option aliases.

Errors a user can cause end in one line on stderr and a non-zero exit (2 for wrong names and
values); ``--debug`` (or ``SGBENCH_DEBUG=1``) prints the full traceback as well.
"""
from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import UsageError, UserError, formatted_traceback



def terminal_width() -> int | None:
    """The terminal's width when stdout is one (or COLUMNS says), else None: piped output is
    never cut or wrapped to a guessed width."""
    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return shutil.get_terminal_size().columns
    return None


err = Console(stderr=True)
out = Console(width=terminal_width() or 100_000)


def print_tables(*tables: Any) -> None:
    """Rich tables that fit the width by wrapping their cells: nothing is cut."""
    for table in tables:
        for column in table.columns:
            column.no_wrap, column.overflow = False, "fold"
        out.print(table)
DEBUG = {"on": False}


def debugging() -> bool:
    return DEBUG["on"] or os.environ.get("SGBENCH_DEBUG", "") not in ("", "0")


def fail(message: str, code: int, exc: BaseException | None = None) -> typer.Exit:
    """Print one error line (and, when debugging, the traceback); the Exit to raise."""
    if exc is not None and debugging():
        err.print(formatted_traceback(exc), highlight=False, markup=False, soft_wrap=True)
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def user_errors(fn: Callable) -> Callable:
    """Turn UserError into one line on stderr and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            raise fail(str(exc), exc.code, exc) from None

    return wrapper


def print_json(data: Any) -> None:
    from ..record import print_json as dump

    dump(data)


MAX_THREADS = 1024  # the bound `run` keeps too (train/setup.py)


def set_threads(threads: int | None) -> None:
    """torch's intra-op threads (None: torch's default)."""
    if threads is not None:
        if not 1 <= threads <= MAX_THREADS:
            raise UsageError(f"--threads must lie in [1, {MAX_THREADS}], got {threads}")
        import torch

        torch.set_num_threads(threads)


def parse_ints(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{flag} takes integers separated by commas, got '{text}'") from None


def load_runs(runs: Path) -> list[dict]:
    """Every record under ``runs``; unreadable record files are named on stderr and skipped."""
    from ..record import load_records

    records, problems = load_records(runs)
    for problem in problems:
        err.print(f"[yellow]skipped[/] {escape(problem)}", highlight=False, soft_wrap=True)
    return records


# Options that several commands declare alike.
Runs = Annotated[Path, typer.Option("--runs", help="Folder of run records.")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
TaskName = Annotated[str, typer.Option("--task", "-t", help="Task name or path to a .yaml file.")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
Threads = Annotated[Optional[int], typer.Option("--threads", help="torch's intra-op CPU "
                                                "threads (default: torch's own).")]
Published = Annotated[Optional[Path], typer.Option("--published", help="Published numbers "
                                                   "(default: the ones sgbench ships).")]
Overrides = Annotated[list[str], typer.Option("-o", "--override", help="Task key=value.")]
Params = Annotated[list[str], typer.Option("--param", help="Method parameter key=value.")]
DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="Dataset root (default: "
                                                 "$SGBENCH_DATA, else ~/.cache/sgbench/data).")]
Suite = Annotated[str, typer.Option("--suite", help="A reference suite (sgbench ships digits "
                                    "and fashion_mnist).")]
