"""The reference suites: run one, pin its numbers, and check runs against them (`regress`).

A suite (``sgbench/suites/NAME.yaml``) is a grid of CPU runs; its pinned numbers
(``NAME.pinned.json`` beside it) hold each configuration's mean, std and tolerance.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from .compare import summarize
from .config import load_yaml
from .errors import UsageError, UserError
from .published import lookup
from .record import load_records
from .registry import builtin_names
from .values import did_you_mean

SUITES = Path(__file__).resolve().parent / "suites"
DEFAULT_SUITE = "digits"


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITES.glob("*.yaml"))


def suite_path(name: str) -> Path:
    return SUITES / f"{name}.yaml"


def pinned_path(name: str) -> Path:
    return SUITES / f"{name}.pinned.json"


def load_suite(name: str = DEFAULT_SUITE) -> dict[str, Any]:
    path = suite_path(name)
    if not path.is_file():
        raise UsageError(f"no reference suite '{name}' in {SUITES}"
                         f"{did_you_mean(name, suite_names())}; suites: "
                         f"{', '.join(suite_names()) or 'none'}")
    suite = load_yaml(path, "reference suite")
    if suite.get("methods") == "all":
        suite["methods"] = list(builtin_names())
    return suite


def suite_runs(suite: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"method": m, "task": t, "T": T, "seed": s}
            for t in suite["tasks"] for T in suite["T"] for m in suite["methods"]
            for s in suite["seeds"]]


def _one_thread() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def _run_one(job: dict[str, Any]) -> str:
    from .train import RunRequest, run

    _, path = run(RunRequest(**job))
    return str(path)


def run_suite(out_dir: Path, jobs: int = 2, suite: dict[str, Any] | None = None) -> list[str]:
    """Every run of the suite, ``jobs`` processes at a time, one thread each (reproducible)."""
    suite = suite or load_suite()
    requests = [{**r, "epochs": suite["epochs"], "latency_repeats": suite["latency_repeats"],
                 "device": "cpu", "out_dir": Path(out_dir)} for r in suite_runs(suite)]
    with ProcessPoolExecutor(max_workers=jobs, initializer=_one_thread) as pool:
        return list(pool.map(_run_one, requests))


def pin(records: list[dict[str, Any]], suite: dict[str, Any]) -> dict[str, Any]:
    """Mean, std and tolerance of top-1 per (task, T, method), from the suite's runs."""
    groups = []
    for row in summarize(records):
        if row["n"] == 0:
            continue
        std = row["top1_std"] or 0.0
        groups.append({"task": row["task"], "version": row["version"], "T": row["T"],
                       "method": row["method"], "params": row["params"], "n": row["n"],
                       "top1_mean": round(row["top1_mean"], 4), "top1_std": round(std, 4),
                       "tolerance": round(max(3 * std, suite["min_tolerance"]), 4),
                       "seeds": row["seeds"]})
    expected = len(suite_runs(suite)) // len(suite["seeds"])
    if len(groups) != expected:
        raise UserError(f"the runs cover {len(groups)} of the suite's {expected} configurations")
    return {"suite": {k: suite[k] for k in ("name", "version", "epochs", "seeds")},
            "groups": groups}


def pin_suite(name: str, runs: Path) -> tuple[Path, int]:
    """Pin suite ``name`` from the records in ``runs``: its pinned file and how many
    configurations it holds; then regenerate the leaderboard."""
    from .leaderboard import write_leaderboard

    suite = load_suite(name)
    records, problems = load_records(runs)
    if problems:
        raise UserError("; ".join(problems))
    pinned = pin(records, suite)
    pinned_path(name).write_text(json.dumps(pinned, indent=1) + "\n")
    write_leaderboard()
    return pinned_path(name), len(pinned["groups"])


def read_pinned(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"no pinned reference numbers at {path}; run `sgbench reference run` "
                        f"and `sgbench reference pin`")
    return json.loads(path.read_text())


def regress(records: list[dict[str, Any]], pinned: dict[str, Any],
            published: list[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Configurations whose mean top-1 fell below the pinned mean minus its tolerance, or (with
    published numbers) below a published number matched approximately or exactly, by more
    than its reported std (or 1 point)."""
    pinned_by = {(g["task"], g["version"], g["T"], g["method"], g["params"]): g
                 for g in pinned["groups"]}
    short = []
    for row in summarize(records):
        if row["n"] == 0:
            continue
        key = (row["task"], row["version"], row["T"], row["method"], row["params"])
        ref = pinned_by.get(key)
        if ref is not None and row["top1_mean"] < ref["top1_mean"] - ref["tolerance"]:
            short.append({**_what(row), "against": "reference", "expected": ref["top1_mean"],
                          "tolerance": ref["tolerance"],
                          "shortfall": ref["top1_mean"] - row["top1_mean"]})
        for entry in lookup(published, row["task"], row["T"], row["method"]):
            if entry["protocol_match"] == "different":
                continue
            tolerance = entry["std"] or 1.0
            if row["top1_mean"] < entry["top1"] - tolerance:
                short.append({**_what(row), "against": f"published ({entry['evidence']})",
                              "expected": entry["top1"], "tolerance": tolerance,
                              "shortfall": entry["top1"] - row["top1_mean"]})
    return short


def _what(row: dict[str, Any]) -> dict[str, Any]:
    return {"task": row["task"], "T": row["T"], "method": row["method"],
            "params": row["params"], "top1": row["top1_mean"], "n": row["n"]}


def covered(records: list[dict[str, Any]], pinned: dict[str, Any]) -> int:
    keys = {(r["task"]["name"], r["T"], r["method"]["name"]) for r in records}
    return sum((g["task"], g["T"], g["method"]) in keys for g in pinned["groups"])
