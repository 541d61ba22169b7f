"""Leaderboard rows as a table (terminal, Markdown, HTML), CSV or JSON.

A table names a configuration by its short label (the method and the parameters that differ from
its defaults; CSV and JSON keep every parameter), shows a column only where rows differ (what all
rows share goes into the caption), and writes each measure in one number format.
"""
from __future__ import annotations

import csv
import io
import json
from typing import Any

from tabulate import tabulate

from .compare import DEFAULT_COLUMNS, KEYS, MEASURES, flags
from .errors import UsageError

FORMATS = ("table", "md", "csv", "json", "html")
CONTEXT = ("task", "version", "protocol", "T", "epochs")  # shown as columns only when they vary


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}; got '{fmt}'")


def number(value: Any, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def cell(row: dict[str, Any], column: str) -> str:
    """Mean ± std in the measure's format (the std only where there are several seeds)."""
    fmt = MEASURES[column].fmt
    mean, std = row.get(f"{column}_mean"), row.get(f"{column}_std")
    return number(mean, fmt) + (f" ± {number(std, fmt)}" if std is not None else "")


def signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}"


def p_value(p: float | None) -> str:
    return "—" if p is None else "<0.001" if p < 0.001 else f"{p:.3f}"


def caption(rows: list[dict[str, Any]]) -> list[str]:
    """What every row shares (one line), and what the columns mean (one line each)."""
    shared = [f"{key} {rows[0][key]}" for key in CONTEXT
              if len({str(r[key]) for r in rows}) == 1 and rows[0][key] is not None]
    notes = ["mean ± std over seeds (n), top-1 of the final epoch"]
    if any(row["excluded"] for row in rows):
        notes.append("not ok: runs that failed, diverged or were interrupted")
    return ["; ".join(shared)] * bool(shared) + notes


def render(rows: list[dict[str, Any]], fmt: str, columns: tuple[str, ...] = DEFAULT_COLUMNS
           ) -> str:
    check_format(fmt)
    if fmt == "json":
        from .record import strict

        return json.dumps(strict(rows), indent=1, allow_nan=False)
    if fmt == "csv":
        return _csv(rows, columns)
    headers, body = _grid(rows, columns)
    style = {"md": "github", "html": "html"}.get(fmt, "simple")  # tabulate escapes html
    table = str(tabulate(body, headers=headers, tablefmt=style, disable_numparse=True))
    if fmt == "html":
        return table
    return ("\n\n" if fmt == "md" else "\n").join(caption(rows)) + f"\n\n{table}"


def _csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    fields = [*KEYS, "label", "n", "duplicates", "excluded", "seeds"] + [
        f"{c}_{s}" for c in columns for s in ("mean", "std")]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "params": json.dumps(row["params"], sort_keys=True),
                         "seeds": " ".join(map(str, row["seeds"]))})
    return buffer.getvalue().rstrip("\n")


def _grid(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> tuple[list, list]:
    varying = [key for key in CONTEXT if len({str(r[key]) for r in rows}) > 1]
    published = any(row.get("published", {}).get("top1") is not None for row in rows)
    baseline = any("baseline" in row for row in rows)
    not_ok = any(row["excluded"] for row in rows)
    headers = varying + ["method"] + [MEASURES[c].header for c in columns] + ["n"]
    headers += ["not ok"] * not_ok + ["published (evidence)", "Δ pub."] * published
    headers += [f"Δ {_baseline_name(rows)}", "p (Welch)"] if baseline else []
    headers += ["flags"]
    body = []
    for row in rows:
        cells = [str(row[k]) if row[k] is not None else "—" for k in varying]
        cells += [row["label"]] + [cell(row, c) for c in columns] + [str(row["n"])]
        cells += [str(row["excluded"])] * not_ok
        if published:
            pub = row.get("published", {})
            cells += [f"{pub['top1']:.2f} ({pub['evidence']}, {pub['epoch']})"
                      if pub.get("top1") is not None else "—", signed(pub.get("delta"))]
        if baseline:
            base = row.get("baseline", {})
            cells += [signed(base.get("delta")), p_value(base.get("p_value"))]
        body.append(cells + [", ".join(flags(row))])
    return headers, body


def _baseline_name(rows: list[dict[str, Any]]) -> str:
    return next(row["baseline"]["method"] for row in rows if "baseline" in row)
