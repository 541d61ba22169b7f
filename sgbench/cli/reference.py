"""`sgbench reference run|pin|leaderboard` and `sgbench regress`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import UsageError, UserError
from .common import Suite, err, load_runs, out, user_errors

reference_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                            help="The reference suites: run one, pin it, render the "
                                 "leaderboard.")
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
    from ..files import ensure_writable
    from ..results.reference import load_suite, run_suite, suite_runs

    if jobs < 1:
        raise UsageError("--jobs must be >= 1")
    spec = load_suite(suite)
    folder = ensure_writable(_runs(out_dir, suite))
    err.print(f"{len(suite_runs(spec))} runs, {jobs} at a time -> {folder}", highlight=False)

    def report(done: int, total: int, job: dict, result: dict) -> None:
        top1 = f"top-1 {result['top1']:.2f}%" if result["top1"] is not None and \
            result["status"] == "ok" else result["status"]
        why = f": {result['error']}" if result.get("error") else ""
        err.print(f"[{done}/{total}] {job['task']} T={job['T']} {job['method']} seed "
                  f"{job['seed']}: {top1} ({result['wall_s']:.0f}s){why}", highlight=False,
                  soft_wrap=True)

    paths, stopped = run_suite(folder, jobs, spec, report)
    if stopped:
        err.print(f"stopped: {len(paths)} records in {folder}; the same command resumes "
                  f"(finished runs are kept, interrupted ones continue from their checkpoint)",
                  highlight=False, soft_wrap=True)
        raise typer.Exit(130)
    out.print(f"{len(paths)} records in {folder}", highlight=False)


@reference_app.command("pin")
@user_errors
def reference_pin_cmd(
    suite: Suite = "digits",
    runs: Optional[Path] = typer.Option(None, "--runs", help=RUNS_HELP),
) -> None:
    """Pin a suite's results (mean, std, tolerance) and regenerate results/LEADERBOARD.md."""
    from ..results.leaderboard import write_leaderboard
    from ..results.reference import pin_suite

    path, count = pin_suite(suite, _runs(runs, suite))
    board = write_leaderboard()
    out.print(f"pinned {count} configurations in {path}; wrote {board}", highlight=False)


@reference_app.command("leaderboard")
@user_errors
def reference_leaderboard_cmd(
    check: bool = typer.Option(False, "--check", help="Exit 1 if LEADERBOARD.md is stale."),
) -> None:
    """Render results/LEADERBOARD.md from the committed leaderboard records and the pinned
    numbers (or check that it is current); run it from the repository root."""
    from ..results.leaderboard import write_leaderboard

    path = write_leaderboard(check)
    out.print(f"{path} is current" if check else f"wrote {path}", highlight=False)


@user_errors
def regress_cmd(
    suite: Suite = "digits",
    runs: Optional[Path] = typer.Option(None, "--runs", help=RUNS_HELP),
    reference: Optional[Path] = typer.Option(None, "--reference", help="Pinned numbers "
                                             "(default: the suite's own)."),
    published_too: bool = typer.Option(False, "--published", help="Also check published "
                                       "numbers whose protocol matches."),
    subset: bool = typer.Option(False, "--subset", help="Let pinned configurations without "
                                "runs pass (they are listed)."),
) -> None:
    """Exit 1 when runs fall short of the pinned numbers of the same configuration (or of
    published ones), or when pinned configurations have no runs (unless --subset)."""
    from ..results.published import load as load_published
    from ..results.reference import load_suite, pinned_path, read_pinned, regress

    spec = load_suite(suite)  # an unknown suite fails here, with the known names
    folder = _runs(runs, suite)
    if not folder.is_dir():
        raise UsageError(f"no folder of runs at {folder}: make one with `sgbench reference run "
                         f"--suite {suite}` (or name it with --runs)")
    pinned = read_pinned(reference or pinned_path(suite))
    if reference is None and pinned["suite"].get("version") != spec["version"]:
        raise UserError(f"the pinned numbers are of version {pinned['suite'].get('version')} of "
                        f"suite '{suite}', the suite is version {spec['version']}: run it and "
                        f"pin it again (`sgbench reference run` and `reference pin`)")
    result = regress(load_runs(folder), pinned, load_published() if published_too else [])
    total = len(pinned["groups"])
    if result.unmatched:
        err.print(f"{len(result.unmatched)} configuration(s) of these runs match no pinned one "
                  f"(other epochs, overrides or params): not checked, not regressions. E.g. "
                  f"{result.unmatched[0]}", highlight=False, soft_wrap=True)
    if result.missing:
        names = ", ".join(f"{g['task']} T={g['T']} {g['label']}" for g in result.missing[:5])
        err.print(f"{len(result.missing)} of {total} pinned configurations have no runs here"
                  f"{'' if subset else ' (use --subset to check only those present)'}: "
                  f"{names}{' ...' if len(result.missing) > 5 else ''}", highlight=False,
                  soft_wrap=True)
    checked = f"{result.checked} of {total} pinned configurations checked"
    if result.short:
        _print_short(result.short, checked)
    elif result.checked == 0:
        out.print(f"nothing checked: no run in {folder} matches a pinned configuration",
                  highlight=False)
    else:
        out.print(f"no regression ({checked} in {folder})", highlight=False)
    if result.short or (result.missing and not subset):
        raise typer.Exit(1)


def _print_short(short: list[dict], checked: str) -> None:
    table = Table("task", "T", "method", "top-1", "n", "against", "expected", "tolerance",
                  "short by", title=f"regressions ({checked})")
    for row in short:
        table.add_row(row["task"], str(row["T"]), row["method"], f"{row['top1']:.2f}",
                      str(row["n"]), row["against"], f"{row['expected']:.2f}",
                      f"{row['tolerance']:.2f}", f"{row['shortfall']:.2f}")
    out.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(reference_app, name="reference")
    app.command("regress")(regress_cmd)
