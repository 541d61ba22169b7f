"""The reference suite, its pinned numbers, the generated leaderboard, and regression checks."""
from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from .compare import blank_measures, render, summarize
from .config import load_yaml
from .errors import UsageError, UserError
from .method import did_you_mean
from .published import lookup
from .record import load_records
from .registry import builtin_names

ROOT = Path(__file__).resolve().parents[1] / "results"
SUITES, BOARDS, LEADERBOARD = ROOT / "reference", ROOT / "leaderboards", ROOT / "LEADERBOARD.md"
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


def read_pinned(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"no pinned reference numbers at {path}; run `sgbench reference run` "
                        f"and `sgbench reference pin`")
    return json.loads(path.read_text())


def pinned_section(pinned: dict[str, Any]) -> str:
    """Markdown of one suite's pinned numbers, rendered by `compare`'s table code."""
    rows = []
    for g in pinned["groups"]:
        row = {"task": g["task"], "version": g["version"], "protocol": "controlled", "T": g["T"],
               "method": g["method"], "params": g["params"], "n": g["n"], "excluded": 0,
               **blank_measures()}
        row["top1_mean"], row["top1_std"] = g["top1_mean"], g["top1_std"] if g["n"] > 1 else None
        rows.append(row)
    suite = pinned["suite"]
    return (f"## Reference suite `{suite['name']}` (pinned)\n\nFrom `results/reference/"
            f"{suite['name']}.pinned.json` (suite v{suite['version']}: {suite['epochs']} epochs, "
            f"seeds {suite['seeds']}). Final-epoch top-1, mean ± std over seeds. Short runs on "
            f"CPU: a guard against regressions, not a measure of what the methods can reach.\n\n"
            + render(rows, "md", ("top1",)) + "\n")


BOARD_COLUMNS = ("top1", "synops", "energy_uj")
BOARD_BASELINE = "atan"


def board_section(spec_path: Path) -> str:
    """Markdown of one committed leaderboard sweep: every record in its folder, the `compare`
    table against the baseline, and where the numbers come from (read from the records)."""
    spec = load_yaml(spec_path, "sweep spec")
    folder = ROOT.parent / spec["out"]
    records = load_records(folder)[0] if folder.is_dir() else []
    tasks = sorted({r["task"]["name"] for r in records}) or list(spec["tasks"])
    rows = [row for task in tasks for row in summarize(records, task, baseline=BOARD_BASELINE)]
    cols = ",".join(BOARD_COLUMNS)
    command = (f"sgbench compare --runs results --task {tasks[0]} --baseline {BOARD_BASELINE} "
               f"--columns {cols} --format md")
    return (f"## {spec['name']}: `{spec_path.relative_to(ROOT.parent)}`\n\n"
            f"{provenance(records)}\n\nReproduce the table: `{command}`.\n\n"
            + render(rows, "md", BOARD_COLUMNS) + "\n")


def provenance(records: list[dict[str, Any]]) -> str:
    """Which commits, devices, threads and epochs the records came from."""
    if not records:
        return "No records yet: run the sweep."

    def values(get) -> str:
        return ", ".join(sorted({str(get(r)) for r in records}))

    return (f"{len(records)} records; epochs {values(lambda r: r['task']['config']['train']['epochs'])}"
            f"; commit {values(lambda r: (r['env']['git']['commit'] or 'unknown')[:10])}"
            f" (uncommitted changes: {values(lambda r: r['env']['git']['dirty'])}); device "
            f"{values(lambda r: r['env']['device_name'])}; torch threads "
            f"{values(lambda r: r['env']['torch_threads'])}; created "
            f"{min(r['created'] for r in records)} to {max(r['created'] for r in records)}. "
            f"Final-epoch top-1 (%), mean ± std over seeds; SynOps and energy (uJ) per sample; "
            f"Δ and Welch's p against `{BOARD_BASELINE}`.")


def leaderboard() -> str:
    """results/LEADERBOARD.md: the committed leaderboard sweeps, then every pinned suite."""
    sections = [board_section(p) for p in sorted(BOARDS.glob("*.yaml"))]
    sections += [pinned_section(read_pinned(pinned_path(name))) for name in suite_names()
                 if pinned_path(name).is_file()]
    return ("# Leaderboards\n\nGenerated by `sgbench reference leaderboard` from committed run "
            "records and pinned reference numbers; CI checks that it is current.\n\n"
            + "\n".join(sections))


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
