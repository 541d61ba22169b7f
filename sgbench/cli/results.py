"""Commands that read records: `compare`, `show`, `check`, `plot` and `report` (no torch
import for compare and check)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..errors import UsageError, UserError
from ..record import read_record
from .common import (Json, Published, Runs, err, load_runs, out, print_json, print_tables,
                     terminal_width, user_errors)

RUNS = Path("results/runs")


def check_rope(rope: float | None, level: float) -> None:
    import math

    if rope is not None and not (math.isfinite(rope) and 0 < rope <= 100):
        raise UsageError(f"--rope must lie in (0, 100] points of top-1, got {rope}")
    if not 0.5 < level < 1:
        raise UsageError(f"--level must lie in (0.5, 1), got {level}")


@user_errors
def compare_cmd(
    runs: Runs = RUNS,
    task: Optional[str] = typer.Option(None, "--task"),
    fmt: str = typer.Option("table", "--format", help="table, md, csv, json or html."),
    columns: Optional[str] = typer.Option(None, "--columns", help="Measures to show, e.g. "
                                          "top1,synops,energy_uj,latency_b1_p50_ms."),
    T: Optional[int] = typer.Option(None, "--T", help="Only this T."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="A method to compare each "
                                           "row with (difference and Welch's t-test)."),
    published_file: Published = None,
    rope: Optional[float] = typer.Option(None, "--rope", help="With --baseline: the half-width "
                                         "(points of top-1) of practical equivalence (default: "
                                         "the task's `rope`, else 0.5)."),
    level: float = typer.Option(0.95, "--level", help="With --baseline: the probability a "
                                "verdict (better, equal, worse) needs."),
) -> None:
    """Leaderboard rows per configuration: mean ± std of top-1 and the chosen measures, n; with
    --baseline, the difference, Welch's test and P(worse / equal / better) with a verdict."""
    from ..results.compare import parse_columns, summarize
    from ..results.published import load as load_published
    from ..results.table import check_format, render

    check_format(fmt)
    chosen = parse_columns(columns)
    check_rope(rope, level)
    # the default folder may not exist yet: then only published rows are shown
    records = load_runs(runs) if runs.is_dir() or runs != RUNS else []
    rows = summarize(records, task, T, load_published(published_file), baseline, rope, level)
    if not rows:
        tasks = sorted({r["task"]["name"] for r in records})
        raise UserError(f"no records in {runs} match (and no published numbers)"
                        + (f"; their tasks: {', '.join(tasks)}" if tasks else ""))
    typer.echo(render(rows, fmt, chosen, width=terminal_width()))


@user_errors
def show_cmd(
    record_path: Path = typer.Argument(..., metavar="RECORD", help="A run record (.json)."),
    epoch: Optional[int] = typer.Option(None, "--epoch", help="Diagnostics after this epoch."),
    json_out: Json = False,
) -> None:
    """A run's result (accuracy, operations, energy, latency, cost), its epochs, its other
    timesteps (--eval-T) and its gradient diagnostics per layer and timestep, with a glossary."""
    from ..results import show

    record = read_record(record_path)
    snap = show.snapshot(record, epoch)
    if json_out:
        print_json(snap)
        return
    out.print(show.headline(record), highlight=False, markup=False)
    tables = (show.identity_table(record), show.result_table(record),
              show.history_table(record), show.eval_T_table(record), show.activity_table(snap),
              show.gradient_table(snap), show.timestep_table(snap), show.summary_table(snap))
    print_tables(*(table for table in tables if table is not None))
    for line in show.glossary(snap):
        out.print(line, highlight=False, markup=False, style="dim")


@user_errors
def check_cmd(
    published_file: Published = None,
    runs: Runs = RUNS,
) -> None:
    """Validate the published numbers, every task YAML and every record; exit 1 on problems."""
    from ..check import check

    found, counts = check(published_file, runs)
    checked = ", ".join(f"{n} {what}" for what, n in counts.items())
    if found:
        for problem in found:
            err.print(f"[red]problem[/] {escape(problem)}", highlight=False, soft_wrap=True)
        err.print(f"{len(found)} problem(s) in {checked}", highlight=False)
        raise typer.Exit(1)
    out.print(f"ok: {checked}", highlight=False)


@user_errors
def plot_cmd(
    kind: str = typer.Argument(..., help="rank, accuracy-vs-T, pareto, curves (over a task's "
                               "records), cd (across tasks), firing, membrane or coverage (one "
                               "record)."),
    runs: Runs = RUNS,
    task: Optional[str] = typer.Option(None, "--task", help="Needed when the records cover "
                                       "several tasks."),
    method: Optional[str] = typer.Option(None, "--method", help="Only this method's records."),
    record_path: Optional[Path] = typer.Option(None, "--record", help="The record of a "
                                               "one-record plot (default: the newest match)."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="A .png, .svg or .pdf file "
                                            "(default: results/plots/<task>_<kind>.png)."),
    dpi: int = typer.Option(150, "--dpi", help="Resolution of a PNG."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="rank: the row whose mean "
                                           "is drawn as a line (as compare --baseline)."),
) -> None:
    """Draw one figure from run records (matplotlib; PNG, SVG or PDF by the extension of
    --out); one-record figures show the longest run's lowest seed unless --record names one."""
    from ..results.plots import (ACROSS_TASKS, ONE_RECORD, check_kind, check_out, draw,
                                 pick_record, pick_task)

    check_kind(kind)
    if out_file is not None:
        check_out(out_file)
    if kind in ONE_RECORD and record_path is not None:
        records = [read_record(record_path)]
    else:
        records = [r for r in load_runs(runs)
                   if method is None or r["method"]["name"] == method]
    if kind in ONE_RECORD:
        records = [pick_record(records, task, method)]
        name = records[0]["task"]["name"]
    elif kind in ACROSS_TASKS:
        name = "tasks"
    else:
        task = name = pick_task(records, task)
    if not 30 <= dpi <= 1200:
        raise UsageError(f"--dpi must lie in [30, 1200], got {dpi}")
    from ..files import safe_name

    default = Path("results/plots") / f"{safe_name(name)}_{kind}.png"  # names from records
    path = draw(kind, records, task, out_file or default, dpi, baseline)
    out.print(f"wrote {path}", highlight=False, soft_wrap=True)


@user_errors
def report_cmd(
    out_dir: Path = typer.Option(Path("site"), "--out", help="Folder for index.html and img/."),
    runs: Runs = RUNS,
    published_file: Published = None,
    baseline: str = typer.Option("atan", "--baseline", help="The row each leaderboard's Δ and "
                                 "p refer to, where the task has it (as compare --baseline)."),
) -> None:
    """A static HTML report: ranked leaderboards with significance and flags, the ranking
    across tasks, published numbers with evidence levels, figures, recipe and provenance."""
    from ..results.published import load as load_published
    from ..files import ensure_writable
    from ..results.report import build

    records = load_runs(runs)
    page = build(records, load_published(published_file), ensure_writable(out_dir), runs,
                 baseline)
    out.print(f"wrote {page}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    for name, fn in (("compare", compare_cmd), ("show", show_cmd), ("check", check_cmd),
                     ("plot", plot_cmd), ("report", report_cmd)):
        app.command(name)(fn)
