"""`sgbench report --out DIR`: one static HTML page (no server, no script) with, per task, the
ranked leaderboard (Δ to a baseline with its interval, corrected significance, flags), the recipe
and provenance, the figures that say who wins (and, where records keep gradients per timestep,
how each method's gradient decays over time), and one section per row with the figures of that
row's own record; then the ranking across tasks and the published numbers. Figures and a copy of
every record shown sit beside the page, so it opens from disk."""
from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Any

from tabulate import tabulate

from ..errors import UserError
from ..files import open_new_or_own, own_folder, safe_name
from ..record import strict
from .compare import summarize
from .plots import ONE_RECORD, draw, relative_rms
from .provenance import provenance
from .table import caption, render

COLUMNS = ("top1", "deep_coverage", "synops", "energy_uj")
DPI = 100  # figure text of 9 pt is 12.5 px at full size
WIDE_PLOTS = ("curves", "membrane")
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1em auto; max-width: 1100px; color: #222;
       padding: 0 1em; }
p, li { overflow-wrap: anywhere; }  /* record names and commits wrap rather than widen */
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; }
.caption, .provenance { color: #555; font-size: 0.85em; }
th { background: #dde6f2; }  /* tests look for this colour in a screenshot */
.leaderboard { overflow-x: auto; max-width: 100%; }
.leaderboard td:nth-child(2) { white-space: nowrap; }  /* the configuration; the rest wraps */
@media (max-width: 1000px) { table { font-size: 0.72em; } th, td { padding: 0.2em 0.3em; } }
figure { margin: 0.5em 0; }
/* a figure is never wider than its natural size nor the page: its text stays >= 9 px */
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.index { columns: 14em; font-size: 0.9em; }
.published td { white-space: normal; overflow-wrap: anywhere; }  /* long sources, URLs */
.note { color: #a40; }
dl.recipe dt { font-weight: 600; } dl.recipe dd { margin: 0 0 0.3em 1em; }
"""


def _figure(kind: str, records: list[dict[str, Any]], task: str | None, folder: Path,
            name: str, **options: Any) -> str:
    """A <figure> with the plot's image, or a note saying why there is none."""
    try:
        path = draw(kind, records, task, folder / "img" / f"{safe_name(name)}.png",
                    DPI, **options)
    except UserError as exc:
        return f'<p class="note">{html.escape(kind)}: {html.escape(str(exc))}</p>'
    return (f'<figure><img src="img/{path.name}" alt="{html.escape(name)}">'
            f"<figcaption>{html.escape(kind)}</figcaption></figure>")


def _anchor(*parts: Any) -> str:
    return safe_name("-".join(map(str, parts)))


def _record_link(record: dict[str, Any], folder: Path) -> str:
    """A copy of the record beside the page, and a link to it."""
    name = f"{safe_name(record['run_id'])}.json"
    with open_new_or_own(folder / "records" / name, "w") as fh:
        fh.write(json.dumps(strict(record), indent=1, allow_nan=False))
    return f'<a href="records/{html.escape(name)}">{html.escape(record["run_id"])}</a>'


def _is_main(row: dict[str, Any], rows: list[dict[str, Any]]) -> bool:
    """A method's main row: default parameters and, of several method sources, the newest."""
    if row["label"].split(" @")[0] != row["method"]:
        return False
    same = [r for r in rows if r["method"] == row["method"] and r["label"].split(" @")[0]
            == r["method"]]
    return row["newest"] == max(r["newest"] for r in same)


def _row_section(row: dict[str, Any], records: list[dict[str, Any]], folder: Path,
                 vmax: float) -> str:
    """One leaderboard row's figures, drawn from that configuration's own lowest-seed run."""
    mine = [r for r in records if r["run_id"] in row["run_ids"]
            and (r.get("diagnostics") or {}).get("snapshots")]
    head = (f'<h4 id="{_anchor(row["task"], row["T"], row["label"], row["source"])}">'
            f'{row.get("rank", "—")}. {html.escape(row["label"])}</h4>')
    if not mine:
        return head + '<p class="note">no finished record with diagnostics</p>'
    record = min(mine, key=lambda r: r["seed"])
    links = ", ".join(_record_link(r, folder) for r in records if r["run_id"] in row["run_ids"])
    figures = "".join(_figure(kind, [record], None, folder,
                              f"{record['run_id']}_{kind}", vmax=vmax) for kind in ONE_RECORD)
    return (head + f"<p>Figures: seed {record['seed']} of this exact configuration "
            f"(method source {html.escape(row['source'])}, {len(record['history'])} epochs). "
            f"Records: {links}.</p>{figures}")


def _recipe(record: dict[str, Any]) -> str:
    cfg = record["task"]["config"]
    items = [(section, ", ".join(f"{k}={v}" for k, v in cfg.get(section, {}).items()))
             for section in ("data", "model", "neuron", "train", "eval")]
    return '<dl class="recipe">' + "".join(
        f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in items) + "</dl>"


def _task_section(task: str, records: list[dict[str, Any]], published, folder: Path,
                  baseline: str | None) -> tuple[str, str]:
    """The task's section, and its entries for the page's index."""
    mine = [r for r in records if r["task"]["name"] == task]
    base = baseline if baseline and any(r["method"]["name"] == baseline.split("@")[0]
                                        for r in mine) else None
    rows = summarize(records, task, published=published, baseline=base)
    measured = [r for r in rows if r["n"] > 0]
    table = (f'<p class="caption">{"<br>".join(map(html.escape, caption(rows)))}</p>'
             + render(rows, "html", COLUMNS))
    kinds = ["rank", "pareto", "curves"] + ["accuracy-vs-T"] * (
        len({r["T"] for r in measured}) > 1) + ["grad-decay"] * any(
        r["status"] == "ok" and relative_rms(r) for r in mine)
    figures = "".join(_figure(kind, records, task, folder, f"{task}_{kind}", baseline=base)
                      for kind in kinds)
    vmax = max((max(max(layer["spike_rate"]) for layer in r["diagnostics"]["snapshots"][-1]
                    ["layers"]) for r in mine if r["status"] == "ok"
                and (r.get("diagnostics") or {}).get("snapshots")), default=1.0) or 1.0
    main = [r for r in measured if _is_main(r, measured)]
    variants = [r for r in measured if not _is_main(r, measured)]
    per_row = "".join(_row_section(r, records, folder, vmax) for r in main)
    if variants:
        per_row += ("<h3>Variants: other parameters, or an older version of a method</h3>"
                    + "".join(_row_section(r, records, folder, vmax) for r in variants))
    example = min((r for r in mine if r["status"] == "ok"), key=lambda r: r["created"],
                  default=mine[0])
    index = " · ".join(f'<a href="#{_anchor(r["task"], r["T"], r["label"], r["source"])}">'
                       f'{r.get("rank", "—")}. {html.escape(r["label"])}</a>'
                       for r in main + variants)
    section = (f'<section id="{_anchor(task)}"><h2>{html.escape(task)}</h2>'
               f'<p class="provenance">{html.escape(provenance(mine))}</p>'
               f'<div class="leaderboard">{table}</div>'
               f"<details><summary>Recipe (task {html.escape(task)} "
               f"v{html.escape(str(example['task']['version']))})</summary>"
               f"{_recipe(example)}</details>{figures}"
               f"<h3>Per configuration</h3><p class=\"index\">{index}</p>{per_row}</section>")
    return section, index


def _across_tasks(records: list[dict[str, Any]], folder: Path, baseline: str | None) -> str:
    from .ranking import across_tasks
    from .stats import tasks_needed

    try:
        result = across_tasks(summarize(records))
    except UserError as exc:
        return f'<p class="note">{html.escape(str(exc))}</p>'
    rows = [[m, f"{result['mean_rank'][m]:.2f}"] + [f"{result['scores'][t][m]:.2f}"
                                                     for t in result["tasks"]]
            for m in result["methods"]]
    p = result["friedman_p"]
    return (_bayes_across(result, records, folder, baseline)
            + f"<p>Mean rank of each method's default configuration over the tasks where all of "
            f"them ran; Friedman p = {'—' if p is None else f'{p:.3g}'}, Nemenyi critical "
            f"difference {result['cd']:.2f} (alpha {result['alpha']}): to tell "
            f"{len(result['methods'])} methods' mean ranks 4 apart it would need "
            f"{tasks_needed(len(result['methods']), 4.0)} tasks; here there are "
            f"{len(result['tasks'])}.</p>"
            + tabulate(rows, headers=["method", "mean rank"] + result["tasks"], tablefmt="html",
                       disable_numparse=True)
            + _figure("cd", records, None, folder, "across-tasks_cd"))


def _bayes_across(result: dict[str, Any], records: list[dict[str, Any]], folder: Path,
                  baseline: str | None) -> str:
    """Each method against the baseline on a new task: P(worse / equal / better), verdict."""
    from .bayes import verdict
    from .ranking import bayes_across

    if baseline not in result["methods"]:
        return ""
    vs = bayes_across(result, baseline=baseline)
    table = [[m, *(f"{p:.2f}" for p in vs["vs_baseline"][m]), verdict(vs["vs_baseline"][m])]
             for m in sorted(vs["vs_baseline"], key=lambda m: -vs["vs_baseline"][m][2])]
    return (f"<p>Against {html.escape(baseline)} on a new task like these: the probabilities of "
            f"worse, practically equal (within ±{vs['rope']:g} points) and better, from a "
            f"Bayesian hierarchical model over the per-seed differences on every task.</p>"
            + tabulate(table, headers=["method", "P(worse)", "P(equal)", "P(better)",
                                       "verdict"], tablefmt="html", disable_numparse=True)
            + _figure("bayes", records, None, folder, "across-tasks_bayes", baseline=baseline))


def _published_table(published: list[dict[str, Any]]) -> str:
    rows = [[e.get("method") or f"{e['name']} (external)", e["dataset"], e.get("task") or "—",
             e["arch"], e["T"] if e["T"] is not None else "—",
             "—" if e["top1"] is None else f"{e['top1']:.2f}", e["evidence"], e["epoch"],
             e["protocol_match"], e["source"]] for e in published]
    return tabulate(rows, headers=["method", "dataset", "task", "arch", "T", "top-1 (%)",
                                   "evidence", "epoch", "protocol match", "source"],
                    tablefmt="html")


def build(records: list[dict[str, Any]], published: list[dict[str, Any]], out: Path,
          runs: Path, baseline: str | None = "atan") -> Path:
    """Write ``out/index.html``, ``out/img/*.png`` and ``out/records/*.json``; returns the
    page's path."""
    own_folder(out / "img"), own_folder(out / "records")  # before anything is drawn
    tasks = sorted({r["task"]["name"] for r in records if r["status"] == "ok"})
    if not tasks:
        raise UserError(f"no finished records in '{runs}': run some first")
    built = [_task_section(task, records, published, out, baseline) for task in tasks]
    contents = "".join(f'<li><a href="#{_anchor(t)}">{html.escape(t)}</a>: {index}</li>'
                       for t, (_, index) in zip(tasks, built))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sgbench report</title><style>{STYLE}</style></head>
<body>
<h1>sgbench report</h1>
<p>{len(records)} records from <code>{html.escape(str(runs))}</code>, written
{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}. Each leaderboard is ranked by the final
epoch's top-1, mean ± std over seeds; Δ is the difference to the baseline
({html.escape(baseline or "none")}) with its 95 % interval, and p is Welch's test corrected
over the rows (Holm). The published column gives each paper's number, its evidence level and
whether it was the best epoch.</p>
<ul>{contents}<li><a href="#across-tasks">ranking across tasks</a></li>
<li><a href="#published">published numbers</a></li></ul>
{"".join(section for section, _ in built)}
<section id="across-tasks"><h2>Ranking across tasks</h2>{_across_tasks(records, out, baseline)}</section>
<section id="published"><h2>Published numbers</h2>
<div class="published leaderboard">{_published_table(published)}</div></section>
</body></html>
"""
    index = out / "index.html"
    with open_new_or_own(index, "w") as fh:
        fh.write(page)
    return index
