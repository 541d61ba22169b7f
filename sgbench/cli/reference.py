"""`sgbench reference run|pin|leaderboard` and `sgbench regress`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import UsageError
from .common import Suite, err, load_runs, out, user_errors

reference_app = typer.Typer(no_args_is_help=True,
                            help="The reference suites: run one, pin it, render the leaderboard.")
RUNS_HELP = "Default: results/reference-runs/SUITE."


def _runs(runs: Path | None, suite: str) -> Path:
    return runs or Path("results/reference-runs") / suite


@reference_app.command("run")
@user_errors
def reference_run_cmd(
    suite: Suite = "digits",
    out_dir: Optional[Path] = typer.Option(None, "--out", help=RUNS_HELP),
    jobs: int = typer.Option(2, "--jobs", help="Runs at a time (one thread each)."),
) -> None:
    """Run every configuration of a reference suite."""
    from ..record import ensure_writable
    from ..reference import load_suite, run_suite, suite_runs

    if jobs < 1:
        raise UsageError("--jobs must be >= 1")
    spec = load_suite(suite)
    folder = ensure_writable(_runs(out_dir, suite))
    err.print(f"{len(suite_runs(spec))} runs, {jobs} at a time -> {folder}", highlight=False)
    paths = run_suite(folder, jobs, spec)
    out.print(f"{len(paths)} records in {folder}", highlight=False)


@reference_app.command("pin")
@user_errors
def reference_pin_cmd(
    suite: Suite = "digits",
    runs: Optional[Path] = typer.Option(None, "--runs", help=RUNS_HELP),
) -> None:
    """Pin a suite's results (mean, std, tolerance) and regenerate results/LEADERBOARD.md."""
    from ..leaderboard import LEADERBOARD
    from ..reference import pin_suite

    path, count = pin_suite(suite, _runs(runs, suite))
    out.print(f"pinned {count} configurations in {path}; wrote {LEADERBOARD}", highlight=False)


@reference_app.command("leaderboard")
@user_errors
def reference_leaderboard_cmd(
    check: bool = typer.Option(False, "--check", help="Exit 1 if LEADERBOARD.md is stale."),
) -> None:
    """Render results/LEADERBOARD.md from the committed leaderboard records and the pinned
    numbers (or check that it is current); run it from the repository root."""
    from ..leaderboard import write_leaderboard

    path = write_leaderboard(check)
    out.print(f"{path} is current" if check else f"wrote {path}", highlight=False)


@user_errors
def regress_cmd(
    suite: Suite = "digits",
    runs: Optional[Path] = typer.Option(None, "--runs", help=RUNS_HELP),
    reference: Optional[Path] = typer.Option(None, "--reference", help="Pinned numbers "
                                             "(default: the suite's own)."),
    published_too: bool = typer.Option(False, "--published", help="Also check published "
                                       "numbers matched approximately or exactly."),
) -> None:
    """Exit 1 when runs fall short of the pinned reference (or published) numbers."""
    from ..published import load as load_published
    from ..reference import covered, load_suite, pinned_path, read_pinned, regress

    load_suite(suite)  # an unknown suite fails here, with the known names
    folder = _runs(runs, suite)
    records = load_runs(folder)
    pinned = read_pinned(reference or pinned_path(suite))
    short = regress(records, pinned, load_published() if published_too else [])
    checked = f"{covered(records, pinned)} of {len(pinned['groups'])} pinned configurations"
    if not short:
        out.print(f"no regression ({checked} present in {folder})", highlight=False)
        return
    table = Table("task", "T", "method", "top-1", "n", "against", "expected", "tolerance",
                  "short by", title=f"regressions ({checked})")
    for row in short:
        table.add_row(row["task"], str(row["T"]), row["method"], f"{row['top1']:.2f}",
                      str(row["n"]), row["against"], f"{row['expected']:.2f}",
                      f"{row['tolerance']:.2f}", f"{row['shortfall']:.2f}")
    out.print(table)
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(reference_app, name="reference")
    app.command("regress")(regress_cmd)
