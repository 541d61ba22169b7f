"""Aggregate run records into leaderboard rows and render them (table, md, csv, json)."""
from __future__ import annotations

import csv
import io
import json
import statistics
from typing import Any

from tabulate import tabulate

from .errors import UsageError

FORMATS = ("table", "md", "csv", "json")
COLUMNS = ("task", "version", "protocol", "T", "method", "params", "n", "top1_mean", "top1_std",
           "excluded")


def _params_label(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(params.items()))


def group_key(record: dict[str, Any]) -> tuple:
    return (record["task"]["name"], record["task"]["version"], record["protocol"], record["T"],
            record["method"]["name"], _params_label(record["method"]["params"]))


def summarize(records: list[dict[str, Any]], task: str | None = None) -> list[dict[str, Any]]:
    """One row per (task, version, protocol, T, method, params): mean and sample std of the
    final-epoch top-1 over runs with status ok, their count n, and how many runs were excluded."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in records:
        if task is None or record["task"]["name"] == task:
            groups.setdefault(group_key(record), []).append(record)
    rows = []
    for key in sorted(groups, key=lambda k: tuple(str(part) for part in k)):
        runs = groups[key]
        scores = [r["metrics"]["top1"] for r in runs
                  if r["status"] == "ok" and r["metrics"]["top1"] is not None]
        rows.append({
            **dict(zip(COLUMNS[:6], key)),
            "n": len(scores),
            "top1_mean": statistics.fmean(scores) if scores else None,
            "top1_std": statistics.stdev(scores) if len(scores) > 1 else None,
            "excluded": len(runs) - len(scores),
            "seeds": sorted(r["seed"] for r in runs if r["status"] == "ok"),
        })
    return rows


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


def _display_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    def top1(row):
        std = f" ± {row['top1_std']:.2f}" if row["top1_std"] is not None else ""
        return _fmt(row["top1_mean"]) + std

    return [[_fmt(row[c]) for c in COLUMNS[:6]] + [top1(row), str(row["n"]), str(row["excluded"])]
            for row in rows]


HEADERS = ["task", "version", "protocol", "T", "method", "params", "top-1 (%)", "n", "excluded"]


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}; got '{fmt}'")


def render(rows: list[dict[str, Any]], fmt: str) -> str:
    check_format(fmt)
    if fmt == "json":
        return json.dumps(rows, indent=1)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=[*COLUMNS, "seeds"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "seeds": " ".join(map(str, row["seeds"]))})
        return buffer.getvalue().rstrip("\n")
    table_fmt = "github" if fmt == "md" else "simple"
    return tabulate(_display_rows(rows), headers=HEADERS, tablefmt=table_fmt)
