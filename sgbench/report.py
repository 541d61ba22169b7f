"""`sgbench report --out DIR`: one static HTML page (no server, no script) with the leaderboard
of every task, the published numbers with their evidence levels, and the plots, as files beside
it. It opens from disk."""
from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

from tabulate import tabulate

from .compare import DEFAULT_COLUMNS, summarize
from .table import caption, render
from .errors import UserError
from .plots import ONE_RECORD, draw, pick_record

TASK_PLOTS = ("accuracy-vs-T", "pareto", "curves")
WIDE_PLOTS = ("curves",)  # figures of two panels take a whole row
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; white-space: nowrap; }
.caption { color: #555; font-size: 0.85em; margin-bottom: 0; }
th { background: #dde6f2; }  /* tests look for this colour in a screenshot */
img { width: 100%; height: auto; border: 1px solid #eee; margin: 0.5em 0; }
/* a grid, so every figure is scaled to its cell (flex items keep their image's own width) */
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 480px), 1fr));
           gap: 1em; }
.figures figure { margin: 0; min-width: 0; }
.figures figure.wide { grid-column: 1 / -1; }  /* two panels side by side */
.leaderboard { overflow-x: auto; }
.published td { white-space: normal; }  /* long sources wrap inside the page */
.note { color: #a40; }
"""


def _figure(kind: str, records: list[dict[str, Any]], task: str | None, folder: Path,
            name: str) -> str:
    """A <figure> with the plot's image, or a note saying why there is none."""
    try:
        path = draw(kind, records, task, folder / "img" / f"{name}.png")
    except UserError as exc:
        return f'<p class="note">{html.escape(kind)}: {html.escape(str(exc))}</p>'
    wide = ' class="wide"' if kind in WIDE_PLOTS else ""
    return (f'<figure{wide}><img src="img/{path.name}" alt="{html.escape(name)}">'
            f"<figcaption>{html.escape(kind)}</figcaption></figure>")


def _task_section(task: str, records: list[dict[str, Any]], published, folder: Path) -> str:
    rows = summarize(records, task, published=published)
    table = f'<p class="caption">{"<br>".join(map(html.escape, caption(rows)))}</p>' + \
        render(rows, "html", DEFAULT_COLUMNS) if rows else ""
    figures = [_figure(kind, records, task, folder, f"{task}_{kind}") for kind in TASK_PLOTS]
    methods = sorted({r["method"]["name"] for r in records
                      if r["task"]["name"] == task and r["status"] == "ok"})
    per_method = []
    for method in methods:
        try:
            record = pick_record(records, task, method)
        except UserError:
            continue
        shown = "".join(_figure(kind, [record], None, folder, f"{task}_{method}_{kind}")
                        for kind in ONE_RECORD)
        per_method.append(f"<h3>{html.escape(method)}: seed {record['seed']}, "
                          f"{len(record['history'])} epochs "
                          f"(<code>{html.escape(record['run_id'])}</code>)</h3>"
                          f'<div class="figures">{shown}</div>')
    return (f'<section id="{html.escape(task)}"><h2>{html.escape(task)}</h2>'
            f'<div class="leaderboard">{table}</div>'
            f'<div class="figures">{"".join(figures)}</div>'
            f"{''.join(per_method)}</section>")


def _published_table(published: list[dict[str, Any]]) -> str:
    rows = [[e.get("method") or f"{e['name']} (external)", e["dataset"], e.get("task") or "—",
             e["arch"], e["T"] if e["T"] is not None else "—",
             "—" if e["top1"] is None else f"{e['top1']:.2f}", e["evidence"], e["epoch"],
             e["protocol_match"], e["source"]] for e in published]
    return tabulate(rows, headers=["method", "dataset", "task", "arch", "T", "top-1 (%)",
                                   "evidence", "epoch", "protocol match", "source"],
                    tablefmt="html")


def build(records: list[dict[str, Any]], published: list[dict[str, Any]], out: Path,
          runs: Path) -> Path:
    """Write ``out/index.html`` and ``out/img/*.png``; returns the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    tasks = sorted({r["task"]["name"] for r in records if r["status"] == "ok"})
    if not tasks:
        raise UserError(f"no finished records in '{runs}': run some first")
    sections = "".join(_task_section(task, records, published, out) for task in tasks)
    contents = " · ".join(f'<a href="#{html.escape(t)}">{html.escape(t)}</a>' for t in tasks)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>sgbench report</title>
<style>{STYLE}</style></head>
<body>
<h1>sgbench report</h1>
<p>{len(records)} records from <code>{html.escape(str(runs))}</code>, written
{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}. Top-1 is the final epoch's, mean ± std
over seeds; the published column gives each paper's number, its evidence level and whether it
was the best epoch. Tasks: {contents} · <a href="#published">published numbers</a></p>
{sections}
<section id="published"><h2>Published numbers</h2>
<div class="published">{_published_table(published)}</div></section>
</body></html>
"""
    index = out / "index.html"
    index.write_text(page)
    return index
