"""Aggregate run records into leaderboard rows and render them (table, md, csv, json)."""
from __future__ import annotations

import csv
import io
import json
import statistics
from typing import Any

from tabulate import tabulate

from .errors import UsageError
from .values import did_you_mean

FORMATS = ("table", "md", "csv", "json", "html")
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


def blank_measures() -> dict[str, None]:
    """Every measure's mean and std, unknown: for rows that have no runs behind them."""
    return {f"{c}_{s}": None for c in MEASURES for s in ("mean", "std")}


def _params_label(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(params.items()))


def group_key(record: dict[str, Any]) -> tuple:
    """The configuration a record belongs to; records of methods whose source differs (another
    version of the file, or another method of the same name) are never averaged together."""
    return (record["task"]["name"], record["task"]["version"], record["protocol"], record["T"],
            record["method"]["name"], _params_label(record["method"]["params"]),
            record["method"].get("source_sha256"))


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    return (statistics.fmean(values) if values else None,
            statistics.stdev(values) if len(values) > 1 else None)


def summarize(records: list[dict[str, Any]], task: str | None = None, T: int | None = None,
              published: list[dict[str, Any]] = (), baseline: str | None = None
              ) -> list[dict[str, Any]]:
    """One row per (task, version, protocol, T, method, params): over the runs with status ok,
    the mean and sample std of every measure (``top1`` is the final epoch), their count n, and how
    many runs were excluded. Published numbers for the same task, T and method sit beside them,
    and published rows without local runs are rows of their own. With ``baseline``, each row gets
    its difference to that method's row of the same task, version, protocol and T, and the
    p-value of Welch's t-test over seeds."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in records:
        if (task is None or record["task"]["name"] == task) and (T is None or record["T"] == T):
            groups.setdefault(group_key(record), []).append(record)
    rows = []
    for key in sorted(groups, key=lambda k: tuple(str(part) for part in k)):
        runs = groups[key]
        ok, duplicates = _one_per_seed(
            [r for r in runs if r["status"] == "ok" and r["metrics"]["top1"] is not None])
        row: dict[str, Any] = {**dict(zip(KEYS, key)), "source": (key[-1] or "")[:8],
                               "n": len(ok), "duplicates": duplicates,
                               "excluded": len(runs) - len(ok) - duplicates,
                               "seeds": sorted(r["seed"] for r in ok),
                               "top1_runs": [r["metrics"]["top1"] for r in ok],
                               # runs whose resolved task configs differ (epochs, overrides)
                               "configs": len({r["task"].get("sha256") for r in ok})}
        for column, (section, field, _) in MEASURES.items():
            values = [r[section][field] for r in ok if r[section].get(field) is not None]
            row[f"{column}_mean"], row[f"{column}_std"] = _stats(values)
        rows.append(row)
    _mark_sources(rows)
    _attach_published(rows, published, task, T)
    if baseline is not None:
        _attach_baseline(rows, baseline)
    return rows


def _one_per_seed(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The first finished record of each seed (repeats of a seed are not independent samples),
    and how many repeats were left out."""
    kept: dict[int, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: r.get("created", "")):
        kept.setdefault(record["seed"], record)
    return list(kept.values()), len(records) - len(kept)


def _mark_sources(rows: list[dict[str, Any]]) -> None:
    """Rows of one configuration whose method sources differ are told apart by a flag."""
    sources: dict[tuple, set] = {}
    for row in rows:
        sources.setdefault(tuple(row[k] for k in KEYS), set()).add(row["source"])
    for row in rows:
        row["source_differs"] = len(sources[tuple(row[k] for k in KEYS)]) > 1


def _published_label(entry: dict[str, Any]) -> str:
    return entry["method"] or f"{entry['name']} (external)"


def _attach_published(rows: list[dict[str, Any]], entries, task: str | None, T: int | None
                      ) -> None:
    """The published number beside each row, and rows for published numbers not run here."""
    from .published import lookup

    covered = set()
    for row in rows:
        matches = lookup(entries, row["task"], row["T"], row["method"])
        entry = matches[0] if matches else None
        row["published"] = _published_fields(entry)
        if entry is not None and row["top1_mean"] is not None:
            row["published"]["delta"] = row["top1_mean"] - entry["top1"]
        covered.update((row["task"], row["T"], row["method"]) for _ in matches)
    scope = {task} if task is not None else {row["task"] for row in rows}
    for entry in entries:
        if entry.get("top1") is None or entry.get("task") not in scope:
            continue
        if T is not None and entry["T"] != T:
            continue
        if (entry["task"], entry["T"], entry["method"]) in covered:
            continue
        row = {"task": entry["task"], "version": None, "protocol": None, "T": entry["T"],
               "method": _published_label(entry), "params": f"arch {entry['arch']}", "n": 0,
               "excluded": 0, "seeds": [], "top1_runs": [],
               "published": _published_fields(entry)}
        row.update(blank_measures())
        rows.append(row)


def _published_fields(entry: dict[str, Any] | None) -> dict[str, Any]:
    if entry is None:
        return {"top1": None, "evidence": None, "epoch": None, "protocol_match": None,
                "source": None, "delta": None}
    return {"top1": entry["top1"], "std": entry["std"], "evidence": entry["evidence"],
            "epoch": entry["epoch"], "protocol_match": entry["protocol_match"],
            "source": entry["source"], "delta": None}


def _attach_baseline(rows: list[dict[str, Any]], baseline: str) -> None:
    from scipy.stats import ttest_ind

    bases = {(r["task"], r["version"], r["protocol"], r["T"]): r for r in rows
             if r["method"] == baseline and r["n"] > 0}
    if not bases:
        methods = sorted({r["method"] for r in rows if r["n"] > 0})
        raise UsageError(f"--baseline '{baseline}': no finished runs of that method here"
                         f"{did_you_mean(baseline, methods)}; methods with runs: "
                         f"{', '.join(methods) or 'none'}")
    for row in rows:
        base = bases.get((row["task"], row["version"], row["protocol"], row["T"]))
        row["baseline"] = {"method": baseline, "delta": None, "p_value": None}
        if base is None or row["n"] == 0 or row is base:
            continue
        row["baseline"]["delta"] = row["top1_mean"] - base["top1_mean"]
        if row["n"] >= 2 and base["n"] >= 2:
            test = ttest_ind(row["top1_runs"], base["top1_runs"], equal_var=False)
            p = float(test.pvalue)
            row["baseline"]["p_value"] = None if p != p else p  # nan when both are constant


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def _cell(row: dict[str, Any], column: str) -> str:
    mean, std = row[f"{column}_mean"], row[f"{column}_std"]
    return _fmt(mean) + (f" ± {_fmt(std)}" if std is not None else "")


def flags(row: dict[str, Any]) -> list[str]:
    """Warnings about a row: too few seeds, runs of differing task configs averaged, or
    another row of the same configuration whose method source differs."""
    found = ["n<3"] if 0 < row["n"] < 3 else []
    found += [f"{row['duplicates']} repeated seed(s) left out"] if row.get("duplicates") else []
    found += ["mixed configs"] if row.get("configs", 1) > 1 else []
    return found + ([f"method source {row['source']}"] if row.get("source_differs") else [])


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}; got '{fmt}'")


def render(rows: list[dict[str, Any]], fmt: str, columns: tuple[str, ...] = DEFAULT_COLUMNS
           ) -> str:
    check_format(fmt)
    if fmt == "json":
        from .record import strict

        return json.dumps(strict(rows), indent=1, allow_nan=False)
    if fmt == "csv":
        fields = [*KEYS, "n", "excluded", "seeds"] + [
            f"{c}_{s}" for c in columns for s in ("mean", "std")]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "seeds": " ".join(map(str, row["seeds"]))})
        return buffer.getvalue().rstrip("\n")
    show_published = any(row.get("published", {}).get("top1") is not None for row in rows)
    show_baseline = any("baseline" in row for row in rows)
    headers = [*KEYS] + [MEASURES[c][2] for c in columns] + ["n", "excluded"]
    headers += ["published (evidence)", "Δ published"] * show_published
    headers += ["Δ baseline", "p (Welch)"] * show_baseline + ["flag"]
    body = []
    for row in rows:
        cells = [_fmt(row[k]) for k in KEYS] + [_cell(row, c) for c in columns] + [
            str(row["n"]), str(row["excluded"])]
        if show_published:
            pub = row.get("published", {})
            cells += [f"{pub['top1']:.2f} ({pub['evidence']}, {pub['epoch']} epoch)"
                      if pub.get("top1") is not None else "—", _fmt(pub.get("delta"))]
        if show_baseline:
            base = row.get("baseline", {})
            p = base.get("p_value")
            cells += [_fmt(base.get("delta")), "—" if p is None else f"{p:.3g}"]
        cells.append(", ".join(flags(row)))
        body.append(cells)
    style = {"md": "github", "html": "html"}.get(fmt, "simple")  # tabulate escapes html
    return str(tabulate(body, headers=headers, tablefmt=style))
