"""The reference suites: run one, pin its numbers, and check runs against them (`regress`).

A suite (``sgbench/suites/NAME.yaml``) is a grid of CPU runs; its pinned numbers
(``NAME.pinned.json`` beside it) hold each configuration's mean, std and tolerance.
"""
from __future__ import annotations

import json
import math
import os
import signal
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import load_yaml
from ..errors import UsageError, UserError
from ..files import write_atomic
from ..progress import GridStatus
from ..record import load_records
from ..registry import builtin_names
from ..values import did_you_mean
from .compare import params_key, summarize
from .published import lookup

SUITES = Path(__file__).resolve().parent.parent / "suites"
DEFAULT_SUITE = "digits"


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITES.glob("*.yaml"))


def _suite_name(name: str) -> str:
    """A suite is named, never a path: its files live in sgbench/suites/ alone."""
    if name not in suite_names():
        raise UsageError(f"no reference suite '{name}'{did_you_mean(name, suite_names())}; "
                         f"suites: {', '.join(suite_names()) or 'none'}")
    return name


def suite_path(name: str) -> Path:
    return SUITES / f"{_suite_name(name)}.yaml"


def pinned_path(name: str) -> Path:
    return SUITES / f"{_suite_name(name)}.pinned.json"


def load_suite(name: str = DEFAULT_SUITE) -> dict[str, Any]:
    suite = load_yaml(suite_path(name), "reference suite")
    if suite.get("methods") == "all":
        suite["methods"] = list(builtin_names())
    return suite


def suite_runs(suite: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"method": m, "task": t, "T": T, "seed": s}
            for t in suite["tasks"] for T in suite["T"] for m in suite["methods"]
            for s in suite["seeds"]]


def _worker_start() -> None:
    """A suite worker: one thread, and stop signals ignored while it waits for a job (a run
    installs its own handlers for its duration, so a signal to the group stops the run
    gracefully and never kills an idle worker, which would break the pool)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    import torch

    torch.set_num_threads(1)


def _run_one(job: dict[str, Any]) -> dict[str, Any]:
    """One run of the suite, resuming its checkpoint if one is there; a finished one is taken
    as it is; an error is a result, never an exception that would end the suite."""
    from ..train import RunRequest, run
    from ..train.setup import AlreadyFinished

    try:
        record, path = run(RunRequest(**job, resume=True))
    except AlreadyFinished as done:
        record, path = done.record, done.path
    except UserError as exc:
        return {"path": None, "top1": None, "status": "failed", "wall_s": 0.0,
                "error": str(exc)}
    return {"path": str(path), "top1": record["metrics"]["top1"], "status": record["status"],
            "wall_s": record["cost"]["wall_s"]}


def run_suite(out_dir: Path, jobs: int = 2, suite: dict[str, Any] | None = None,
              on_done=None) -> tuple[list[str], bool]:
    """Every run of the suite, ``jobs`` processes at a time, one thread each (reproducible);
    ``on_done(done, total, job, result)`` hears as each run ends. SIGINT or SIGTERM (to this
    process or its whole group) stops the suite like one process: no queued run starts, the
    running ones stop after their current step with a checkpoint, and the same command
    resumes. Returns the records' paths and whether the suite was stopped."""
    suite = suite or load_suite()
    requests = [{**r, "epochs": suite["epochs"], "latency_repeats": suite["latency_repeats"],
                 "device": "cpu", "out_dir": Path(out_dir)} for r in suite_runs(suite)]
    paths, stop, done = [], threading.Event(), 0
    queue, status = list(reversed(requests)), GridStatus("reference run", len(requests))
    with ProcessPoolExecutor(max_workers=jobs, initializer=_worker_start) as pool:
        previous = _stop_handlers(stop, pool)
        try:
            running: dict = {}
            while queue or running:
                while queue and len(running) < jobs and not stop.is_set():  # none queued ahead
                    job = queue.pop()
                    running[pool.submit(_run_one, job)] = job
                if not running:
                    break
                finished, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                status.tell(done, len(running))
                for future in finished:
                    result, job, done = future.result(), running.pop(future), done + 1
                    paths += [result["path"]] if result["path"] else []
                    if on_done is not None:
                        on_done(done, len(requests), job, result)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return paths, stop.is_set()


def _stop_handlers(stop: threading.Event, pool: ProcessPoolExecutor) -> dict:
    """SIGINT/SIGTERM set ``stop``; a SIGTERM is passed on to the workers once (a scheduler may
    signal this process alone; a Ctrl-C reaches the whole group, workers included, and a
    second SIGINT there would stop a run at once)."""
    def ask(signum, frame):
        first = not stop.is_set()
        stop.set()
        forward = first and signum == signal.SIGTERM
        for pid in list(getattr(pool, "_processes", {}) or {}) if forward else []:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    return {sig: signal.signal(sig, ask) for sig in (signal.SIGINT, signal.SIGTERM)}


def tolerance(std: float, n: int, floor: float) -> float:
    """How far a rerun's mean over the same n seeds may fall below the pinned mean: three
    standard errors of the difference of two means of n runs with spread ``std``, at least
    ``floor`` points (runs on another machine differ in the last bits, and chaos grows them)."""
    return max(floor, 3 * std * math.sqrt(2 / n))


def pin(records: list[dict[str, Any]], suite: dict[str, Any]) -> dict[str, Any]:
    """Mean, std and tolerance of top-1 per configuration (resolved task config, method,
    params) from the suite's runs; a configuration too noisy to pin within the suite's
    ``max_tolerance`` is refused (change the suite: more epochs, or leave it out)."""
    groups, noisy = [], []
    for row in summarize(records):
        if row["n"] == 0:
            continue
        std = row["top1_std"] or 0.0
        tol = tolerance(std, row["n"], suite["min_tolerance"])
        if tol > suite["max_tolerance"]:
            noisy.append(f"{row['task']} T={row['T']} {row['label']}: std {std:.2f} over "
                         f"{row['n']} seeds gives {tol:.2f}")
        groups.append({"task": row["task"], "version": row["version"], "T": row["T"],
                       "epochs": row["epochs"], "config_sha256": row["config_sha256"],
                       "method": row["method"], "params": row["params"], "label": row["label"],
                       "n": row["n"], "seeds": row["seeds"],
                       "top1_mean": round(row["top1_mean"], 4), "top1_std": round(std, 4),
                       "tolerance": round(tol, 4)})
    if noisy:
        raise UserError(f"too noisy to pin within {suite['max_tolerance']} points: "
                        f"{'; '.join(noisy)}. Change the suite (more epochs, or leave them out)")
    expected = len(suite_runs(suite)) // len(suite["seeds"])
    if len(groups) != expected:
        raise UserError(f"the runs cover {len(groups)} of the suite's {expected} configurations")
    return {"suite": {k: suite[k] for k in ("name", "version", "epochs", "seeds")},
            "groups": groups}


def pin_suite(name: str, runs: Path) -> tuple[Path, int]:
    """Pin suite ``name`` from the records in ``runs``: its pinned file and how many
    configurations it holds (the caller regenerates the leaderboard, which reads the pins)."""
    suite = load_suite(name)
    records, problems = load_records(runs)
    if problems:
        raise UserError("; ".join(problems))
    pinned = pin(records, suite)
    write_atomic(pinned_path(name), json.dumps(pinned, indent=1) + "\n")
    return pinned_path(name), len(pinned["groups"])


def read_pinned(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"no pinned reference numbers at {path}; run `sgbench reference run` "
                        f"and `sgbench reference pin`")
    from ..record import read_json

    pinned = read_json(path, "pinned reference file")
    problem = _pinned_problem(pinned)
    if problem:
        raise UserError(f"{path}: not a pinned reference file ({problem})")
    return pinned


PINNED_GROUP = {"task": str, "T": int, "method": str, "params": dict, "label": str, "n": int,
                "top1_mean": (int, float), "tolerance": (int, float)}


def _pinned_problem(pinned: Any) -> str | None:
    """What a pinned file lacks that regress and the leaderboard read, at every depth."""
    if not isinstance(pinned, dict) or not isinstance(pinned.get("suite"), dict) or \
            not isinstance(pinned.get("groups"), list):
        return "it needs a 'suite' mapping and a 'groups' list"
    for index, group in enumerate(pinned["groups"]):
        if not isinstance(group, dict):
            return f"group {index} is not a mapping"
        for key, kind in PINNED_GROUP.items():
            if not isinstance(group.get(key), kind) or isinstance(group.get(key), bool):
                return f"group {index}: '{key}' is missing or of the wrong type"
    return None


def _pin_key(task_sha: str | None, method: str, params: dict[str, Any]) -> tuple:
    return task_sha, method, params_key(params)


@dataclass
class Regression:
    short: list[dict[str, Any]]  # configurations below their pin (or a published number)
    missing: list[dict[str, Any]]  # pinned configurations without runs
    unmatched: list[str]  # configurations of the runs that nothing pins (not checked)
    checked: int  # pinned configurations that had runs


def regress(records: list[dict[str, Any]], pinned: dict[str, Any],
            published: list[dict[str, Any]] = ()) -> Regression:
    """Each configuration of the runs against the pin of the same resolved task config, method
    and params (runs of other epochs or overrides match nothing), and (with published numbers)
    against those whose protocol matches, best-epoch numbers against our best epoch."""
    pins = {_pin_key(g["config_sha256"], g["method"], g["params"]): g for g in pinned["groups"]}
    short, seen, unmatched = [], set(), []
    for row in summarize(records):
        if row["n"] == 0:
            continue
        key = _pin_key(row["config_sha256"], row["method"], row["params"])
        ref = pins.get(key)
        if ref is None:
            unmatched.append(f"{row['task']} T={row['T']} epochs={row['epochs']} {row['label']}")
        elif row["top1_mean"] < ref["top1_mean"] - ref["tolerance"]:
            short.append(_shortfall(row, "reference", ref["top1_mean"], ref["tolerance"],
                                    row["top1_mean"]))
        seen.add(key)
        short += _published_shortfalls(row, published)
    missing = [g for key, g in pins.items() if key not in seen]
    return Regression(short, missing, unmatched, len(pins) - len(missing))


def _published_shortfalls(row: dict[str, Any], published) -> list[dict[str, Any]]:
    found = []
    for entry in lookup(published, row["task"], row["T"], row["method"]):
        if entry["protocol_match"] == "different" or entry["epoch"] == "unknown":
            continue
        ours = row["top1_best_mean"] if entry["epoch"] == "best" else row["top1_mean"]
        tolerance = entry["std"] or 1.0
        if ours is not None and ours < entry["top1"] - tolerance:
            found.append(_shortfall(row, f"published ({entry['evidence']}, {entry['epoch']} "
                                         f"epoch)", entry["top1"], tolerance, ours))
    return found


def _shortfall(row: dict[str, Any], against: str, expected: float, tolerance: float,
               ours: float) -> dict[str, Any]:
    return {"task": row["task"], "T": row["T"], "method": row["label"], "top1": ours,
            "n": row["n"], "against": against, "expected": expected, "tolerance": tolerance,
            "shortfall": expected - ours}
