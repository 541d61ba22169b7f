"""Aggregate run records into leaderboard rows: one per configuration, mean ± std over seeds,
published numbers and a baseline beside them (``table`` renders them)."""
from __future__ import annotations

import json
import math
import statistics
from typing import Any

from ..errors import UsageError
from ..values import did_you_mean
from .ranking import attach_baseline, context, rank_and_test

KEYS = ("task", "version", "protocol", "T", "epochs", "method", "params")


class Measure:
    """A measured column: where a record keeps it (a path of keys), its header and its one number
    format."""

    def __init__(self, where: tuple[str | int, ...], header: str, fmt: str):
        self.where, self.header, self.fmt = where, header, fmt

    def value(self, record: dict[str, Any]) -> float | None:
        """The measure, or None where the record lacks it or holds something not a number."""
        node: Any = record
        for key in self.where:
            try:
                node = node[key]
            except (KeyError, IndexError, TypeError):
                return None
        ok = isinstance(node, (int, float)) and not isinstance(node, bool) and math.isfinite(node)
        return node if ok else None


def _diag(field: str) -> tuple[str | int, ...]:
    """A summary of the last diagnostics snapshot (after the final epoch)."""
    return ("diagnostics", "snapshots", -1, "summary", field)


MEASURES: dict[str, Measure] = {
    "top1": Measure(("metrics", "top1"), "top-1 (%)", ".2f"),
    "top1_best": Measure(("metrics", "top1_best"), "best-epoch top-1 (%)", ".2f"),
    "synops": Measure(("metrics", "synops"), "SynOps", ",.0f"),
    "macs": Measure(("metrics", "macs"), "MACs", ",.0f"),
    "energy_uj": Measure(("metrics", "energy_uj"), "energy (uJ)", ".2f"),
    "energy_paper_uj": Measure(("metrics", "energy_paper_uj"), "energy, paper conv. (uJ)", ".2f"),
    "latency_b1_p50_ms": Measure(("cost", "latency_b1_p50_ms"), "latency b1 (ms)", ".2f"),
    "latency_bn_p50_ms": Measure(("cost", "latency_bn_p50_ms"), "latency bN (ms)", ".2f"),
    "train_samples_per_s": Measure(("cost", "train_samples_per_s"), "train samples/s", ",.0f"),
    "peak_memory_mb": Measure(("cost", "peak_memory_mb"), "peak memory (MB)", ",.0f"),
    "wall_s": Measure(("cost", "wall_s"), "wall (s)", ",.1f"),
    # gradient diagnostics of the final epoch (see `sgbench show`)
    "spike_rate": Measure(_diag("spike_rate"), "spike rate", ".3f"),
    "coverage": Measure(_diag("coverage"), "coverage", ".3f"),
    "deep_coverage": Measure(_diag("deep_coverage"), "deep coverage", ".3f"),
    "sgv_std": Measure(_diag("sgv_std"), "SGV (std)", ".3f"),
    "tgc": Measure(_diag("tgc"), "TGC", ".3f"),
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


def params_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def record_epochs(record: dict[str, Any]) -> int | None:
    return record["task"]["config"].get("train", {}).get("epochs")


def group_key(record: dict[str, Any]) -> tuple:
    """The configuration a record belongs to; records of methods whose source differs (another
    version of the file, or another method of the same name) are never averaged together."""
    return (record["task"]["name"], record["task"]["version"], record["protocol"], record["T"],
            record_epochs(record), record["method"]["name"],
            params_key(record["method"]["params"]), record["method"].get("source_sha256"))


def label(method: str, params: dict[str, Any], defaults: dict[str, Any] | None) -> str:
    """A configuration's short name: the method and only the parameters that differ from its
    defaults (all of them when the defaults are unknown)."""
    changed = {k: v for k, v in sorted(params.items())
               if defaults is None or k not in defaults or defaults[k] != v}
    return f"{method} ({', '.join(f'{k}={v}' for k, v in changed.items())})" if changed \
        else method


def method_defaults(record: dict[str, Any]) -> dict[str, Any] | None:
    """The method's default parameters: from the record, else from a built-in's source."""
    if "defaults" in record["method"]:
        return record["method"]["defaults"]
    from ..registry import static_defaults

    return static_defaults(record["method"]["name"])


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    return (statistics.fmean(values) if values else None,
            statistics.stdev(values) if len(values) > 1 else None)


def summarize(records: list[dict[str, Any]], task: str | None = None, T: int | None = None,
              published: list[dict[str, Any]] = (), baseline: str | None = None,
              rope: float | None = None, level: float | None = None
              ) -> list[dict[str, Any]]:
    """One row per (task, version, protocol, T, method, params, method source): over the runs
    with status ok, the mean and sample std of every measure (``top1`` is the final epoch), the
    per-seed top-1, n, the time to the task's target, and the facts behind the flags. Rows of
    one context (task, version, protocol, T, epochs) are ranked by mean top-1, with every
    pairwise Welch test Holm-corrected. Published numbers for the same task, T and method sit
    beside them, and published rows without local runs are rows of their own. With
    ``baseline`` (see `pick_baseline`), each row gets its difference to that row, a 95 %
    interval, and Welch's p-value, raw and Holm-corrected over the rows compared, and the
    probabilities that it is worse, practically equal (within ``rope``) or better, with a
    verdict at ``level`` (`ranking.attach_baseline`)."""
    from ..config import task_annotations

    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in records:
        if (task is None or record["task"]["name"] == task) and (T is None or record["T"] == T):
            groups.setdefault(group_key(record), []).append(record)
    targets = {name: task_annotations(name).get("target_top1")
               for name in {key[0] for key in groups}}
    rows = [_row(key, groups[key], targets[key[0]]) for key in groups]
    _mark_sources(rows)
    rows.sort(key=lambda r: (tuple(str(p) for p in context(r)), r["top1_mean"] is None,
                             -(r["top1_mean"] or 0.0), r["label"]))
    rank_and_test(rows)
    _attach_published(rows, published, task, T)
    if baseline is not None:
        attach_baseline(rows, baseline, rope, *([level] if level is not None else []))
    return rows


def _row(key: tuple, runs: list[dict[str, Any]], target: float | None) -> dict[str, Any]:
    from .flags import row_facts

    ok, duplicates = _one_per_seed(
        [r for r in runs if r["status"] == "ok" and r["metrics"]["top1"] is not None])
    ok.sort(key=lambda r: r["seed"])
    row: dict[str, Any] = {**dict(zip(KEYS, key)), "source": (key[-1] or "")[:8],
                           "label": label(key[5], runs[0]["method"]["params"],
                                          method_defaults(runs[0])),
                           "params": runs[0]["method"]["params"],
                           "n": len(ok), "duplicates": duplicates,
                           "excluded": len(runs) - len(ok) - duplicates,
                           "seeds": [r["seed"] for r in ok],
                           "top1_runs": [r["metrics"]["top1"] for r in ok],
                           "run_ids": [r.get("run_id") for r in ok],
                           # runs whose resolved task configs differ (epochs, overrides)
                           "configs": len({r["task"].get("sha256") for r in ok}),
                           "config_sha256": runs[0]["task"].get("sha256"),
                           "newest": max(r.get("created", "") for r in runs)}
    for column, m in MEASURES.items():
        values = [v for v in map(m.value, ok) if v is not None]
        row[f"{column}_mean"], row[f"{column}_std"] = _stats(values)
    row.update(row_facts(ok, runs, target))
    return row


def _one_per_seed(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The first finished record of each seed (repeats of a seed are not independent samples),
    and how many repeats were left out."""
    kept: dict[int, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: r.get("created", "")):
        kept.setdefault(record["seed"], record)
    return list(kept.values()), len(records) - len(kept)


def _mark_sources(rows: list[dict[str, Any]]) -> None:
    """Rows of one configuration whose method sources differ are told apart by a flag."""
    def config(row):
        return tuple(str(row[k]) for k in KEYS)

    sources: dict[tuple, set] = {}
    newest: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        sources.setdefault(config(row), set()).add(row["source"])
        if row["newest"] > newest.get(config(row), {"newest": ""})["newest"]:
            newest[config(row)] = row
    for row in rows:
        row["source_differs"] = len(sources[config(row)]) > 1
        if row["source_differs"]:  # two versions of a method: told apart by their source
            row["label"] += f" @{row['source'][:7]}"
            row["newer_source"] = None if newest[config(row)] is row else \
                newest[config(row)]["source"][:7]


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
        ours = row["top1_best_mean"] if entry and entry["epoch"] == "best" else row["top1_mean"]
        if entry is not None and ours is not None:  # best-epoch numbers against best-epoch ones
            row["published"]["delta"] = ours - entry["top1"]
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
               "epochs": None, "method": _published_label(entry), "params": {},
               "label": f"{_published_label(entry)} [{entry['arch']}]", "n": 0, "excluded": 0,
               "duplicates": 0, "seeds": [], "top1_runs": [],
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


def flags(row: dict[str, Any]) -> list[str]:
    """Warnings about a row: too few seeds, repeated seeds, runs of differing task configs
    averaged, an older version of a method whose newer one has rows too, and the
    suspicious-result flags (`flags.row_flags`)."""
    from .flags import row_flags

    found = ["n<3"] if 0 < row["n"] < 3 else []
    found += [f"{row['duplicates']} repeated seed(s) left out"] if row.get("duplicates") else []
    found += ["mixed configs"] if row.get("configs", 1) > 1 else []
    found += [f"older version (newest @{row['newer_source']})"] if row.get("newer_source") \
        else []
    return found + row_flags(row, row.get("twins", []))
