"""Signs that a leaderboard row deserves a second look, computed from its runs: a run history
bit-identical to another configuration's, an adaptive search that ended at its bound, an outlier
seed, accuracy near chance, and runs that did not finish. Also the time each run took to reach
the task's target accuracy. Plain Python: `compare` imports no torch."""
from __future__ import annotations

import hashlib
import json
import statistics
from typing import Any

# Classes of the built-in datasets, for records written before `model.classes` existed.
DATASET_CLASSES = {"digits": 10, "synthetic": 10, "mnist": 10, "fashion_mnist": 10,
                   "cifar10": 10, "cifar100": 100, "cifar10_dvs": 10, "dvs128_gesture": 11,
                   "nmnist": 10, "imagenet": 1000, "tiny_imagenet": 200}
NEAR_CHANCE = 1.5  # a mean top-1 below 1.5x chance
OUTLIER_SPREADS, OUTLIER_MIN_POINTS = 3.0, 1.0  # |x - median| > 3 typical stds and > 1 point


def search_report(bounds: dict[str, tuple], snapshot: dict[str, Any] | None
                  ) -> dict[str, Any]:
    """What a method's search chose, per searched shape parameter: its bounds, the value per
    layer and timestep after the final epoch, and how many layers ended at a bound."""
    if not bounds or not snapshot:
        return {}
    report = {}
    for name, (low, high) in bounds.items():
        chosen = [[step[layer["p_names"].index(name)] for step in layer["p"]]
                  for layer in snapshot["layers"] if name in layer.get("p_names", ())]
        at = [side for values in chosen if (side := _bound_side(values, low, high))]
        report[name] = {"bounds": [low, high], "chosen": chosen, "layers_at_bound": len(at),
                        "at_min": at.count("min"), "at_max": at.count("max")}
    return report


def _bound_side(values: list[float], low: float | None, high: float | None) -> str | None:
    """'min' or 'max' when some timestep's value of a layer sits at that bound."""
    def near(a: float, b: float | None) -> bool:
        return b is not None and abs(a - b) <= 1e-6 * max(1.0, abs(b))

    if any(near(v, high) for v in values):
        return "max"
    return "min" if any(near(v, low) for v in values) else None


def fingerprint(record: dict[str, Any]) -> str:
    """A hash of what a run learned, epoch by epoch: equal only for bit-identical training."""
    history = [(h.get("train_loss"), h.get("test_loss"), h.get("test_top1"))
               for h in record.get("history", [])]
    return hashlib.sha256(json.dumps([record["seed"], history]).encode()).hexdigest()[:16]


def classes(record: dict[str, Any]) -> int | None:
    return record.get("model", {}).get("classes") or DATASET_CLASSES.get(
        record["task"]["config"].get("data", {}).get("dataset"))


def outlier_seeds(seeds: list[int], values: list[float], spread: float | None) -> list[int]:
    """Seeds whose top-1 lies further from the row's median than three times ``spread`` (the
    typical seed std of the rows it is ranked with) and more than a point: with 3 seeds a
    row's own spread cannot tell an outlier from noise, its neighbours' can."""
    if len(values) < 3 or spread is None:
        return []
    median = statistics.median(values)
    limit = max(OUTLIER_SPREADS * spread, OUTLIER_MIN_POINTS)
    return [s for s, v in zip(seeds, values) if abs(v - median) > limit]


def time_to_target(record: dict[str, Any], target: float) -> tuple[int, float] | None:
    """The first epoch whose test top-1 reaches ``target``, and the training seconds up to and
    including it (each epoch's time); None when no epoch does."""
    seconds = 0.0
    for entry in record.get("history", []):
        seconds += entry.get("epoch_time_s") or 0.0
        if entry.get("test_top1") is not None and entry["test_top1"] >= target:
            return entry["epoch"], seconds
    return None


def row_facts(ok: list[dict[str, Any]], runs: list[dict[str, Any]], target: float | None
              ) -> dict[str, Any]:
    """Everything the flags of one row need, from its counted runs (``ok``) and all its runs."""
    statuses = [r["status"] for r in runs if r["status"] != "ok"]
    reached = [t for r in ok if (t := time_to_target(r, target)) is not None] \
        if target is not None else []
    searches = [r["method"].get("search") or {} for r in ok]
    return {
        "fingerprint": ",".join(sorted(fingerprint(r) for r in ok)) or None,
        "classes": classes(runs[0]) if runs else None,
        "not_ok": {s: statuses.count(s) for s in sorted(set(statuses))},
        "target": target,
        "reached": len(reached),
        "target_epoch_mean": statistics.fmean(e for e, _ in reached) if reached else None,
        "target_s_mean": statistics.fmean(s for _, s in reached) if reached else None,
        "search_at_bound": _search_summary(searches),
    }


def _search_summary(searches: list[dict[str, Any]]) -> list[str]:
    """'left at max in 10/12 layers' per searched parameter, over the row's runs (the most
    layers any run left at a bound)."""
    found = []
    for name in sorted({n for s in searches for n, v in s.items() if isinstance(v, dict)}):
        reports = [s[name] for s in searches if isinstance(s.get(name), dict)]
        worst = max(reports, key=lambda r: r["layers_at_bound"])
        if worst["layers_at_bound"]:
            sides = [side for side in ("min", "max") if worst[f"at_{side}"]]
            found.append(f"{name} at {'/'.join(sides)} in {worst['layers_at_bound']}/"
                         f"{len(worst['chosen'])} layers")
    return found


def row_flags(row: dict[str, Any], twins: list[str]) -> list[str]:
    """The suspicious-result flags of a row; ``twins`` are the labels of other rows of the same
    task whose training was bit-identical."""
    found = [f"= {', '.join(twins)} (bit-identical)"] if twins else []
    found += [f"search {s}" for s in row.get("search_at_bound", [])]
    found += [f"outlier seed {', '.join(map(str, row['outlier_seeds']))}"] \
        if row.get("outlier_seeds") else []
    chance = 100.0 / row["classes"] if row.get("classes") else None
    if chance is not None and row.get("top1_mean") is not None \
            and row["top1_mean"] < NEAR_CHANCE * chance:
        found.append(f"near chance ({chance:.0f} %)")
    found += [f"{n} {status}" for status, n in row.get("not_ok", {}).items()]
    return found
