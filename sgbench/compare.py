"""Aggregate run records into leaderboard rows and render them (table, md, csv, json)."""
from __future__ import annotations

import csv
import io
import json
import statistics
from typing import Any

from tabulate import tabulate

from .errors import UsageError
from .method import did_you_mean

FORMATS = ("table", "md", "csv", "json")
KEYS = ("task", "version", "protocol", "T", "method", "params")
# Measured columns: where a record keeps them, and their header.
MEASURES: dict[str, tuple[str, str, str]] = {
    "top1": ("metrics", "top1", "top-1 (%)"),
    "top1_best": ("metrics", "top1_best", "best-epoch top-1 (%)"),
    "synops": ("metrics", "synops", "SynOps/sample"),
    "macs": ("metrics", "macs", "MACs/sample"),
    "energy_uj": ("metrics", "energy_uj", "energy (uJ)"),
    "energy_paper_uj": ("metrics", "energy_paper_uj", "energy, paper conv. (uJ)"),
    "latency_b1_p50_ms": ("cost", "latency_b1_p50_ms", "latency b1 p50 (ms)"),
    "latency_bn_p50_ms": ("cost", "latency_bn_p50_ms", "latency bN p50 (ms)"),
    "train_samples_per_s": ("cost", "train_samples_per_s", "train samples/s"),
    "peak_memory_mb": ("cost", "peak_memory_mb", "peak memory (MB)"),
    "wall_s": ("cost", "wall_s", "wall (s)"),
}
DEFAULT_COLUMNS = ("top1", "synops", "energy_uj", "latency_b1_p50_ms")


def parse_columns(text: str | None) -> tuple[str, ...]:
    if not text:
        return DEFAULT_COLUMNS
    columns = tuple(c.strip() for c in text.split(",") if c.strip())
    for column in columns:
        if column not in MEASURES:
            raise UsageError(f"unknown column '{column}'{did_you_mean(column, MEASURES)}; "
                             f"columns: {', '.join(MEASURES)}")
    return columns


def _params_label(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(params.items()))


def group_key(record: dict[str, Any]) -> tuple:
    return (record["task"]["name"], record["task"]["version"], record["protocol"], record["T"],
            record["method"]["name"], _params_label(record["method"]["params"]))


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    return (statistics.fmean(values) if values else None,
            statistics.stdev(values) if len(values) > 1 else None)


def summarize(records: list[dict[str, Any]], task: str | None = None) -> list[dict[str, Any]]:
    """One row per (task, version, protocol, T, method, params): over the runs with status ok,
    the mean and sample std of every measure (``top1`` is the final epoch), their count n, and how
    many runs were excluded."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in records:
        if task is None or record["task"]["name"] == task:
            groups.setdefault(group_key(record), []).append(record)
    rows = []
    for key in sorted(groups, key=lambda k: tuple(str(part) for part in k)):
        runs = groups[key]
        ok = [r for r in runs if r["status"] == "ok" and r["metrics"]["top1"] is not None]
        row: dict[str, Any] = {**dict(zip(KEYS, key)), "n": len(ok),
                               "excluded": len(runs) - len(ok),
                               "seeds": sorted(r["seed"] for r in ok)}
        for column, (section, field, _) in MEASURES.items():
            values = [r[section][field] for r in ok if r[section].get(field) is not None]
            row[f"{column}_mean"], row[f"{column}_std"] = _stats(values)
        rows.append(row)
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def _cell(row: dict[str, Any], column: str) -> str:
    mean, std = row[f"{column}_mean"], row[f"{column}_std"]
    return _fmt(mean) + (f" ± {_fmt(std)}" if std is not None else "")


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}; got '{fmt}'")


def render(rows: list[dict[str, Any]], fmt: str, columns: tuple[str, ...] = DEFAULT_COLUMNS
           ) -> str:
    check_format(fmt)
    if fmt == "json":
        return json.dumps(rows, indent=1)
    if fmt == "csv":
        fields = [*KEYS, "n", "excluded", "seeds"] + [
            f"{c}_{s}" for c in columns for s in ("mean", "std")]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "seeds": " ".join(map(str, row["seeds"]))})
        return buffer.getvalue().rstrip("\n")
    headers = [*KEYS] + [MEASURES[c][2] for c in columns] + ["n", "excluded"]
    body = [[_fmt(row[k]) for k in KEYS] + [_cell(row, c) for c in columns]
            + [str(row["n"]), str(row["excluded"])] for row in rows]
    return tabulate(body, headers=headers, tablefmt="github" if fmt == "md" else "simple")
