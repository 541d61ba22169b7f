"""Ranks, significance and the baseline of leaderboard rows (``compare.summarize`` makes the
rows and calls these; nothing here imports compare), and the ranking across tasks (mean rank,
Friedman test, Nemenyi critical difference, Bayesian probabilities)."""
from __future__ import annotations

import statistics
from itertools import combinations
from typing import Any

from ..errors import UsageError
from .bayes import LEVEL, ROPE, compare_single
from .flags import outlier_seeds
from .stats import ALPHA, friedman, holm, mean_ranks, nemenyi_cd, welch


CONTEXT = ("task", "version", "protocol", "T", "epochs")


def context(row: dict[str, Any]) -> tuple:
    """What rows must share to be ranked and compared: task, version, protocol, T, epochs."""
    return tuple(row[k] for k in CONTEXT)


def _contexts(rows: list[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    found: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        found.setdefault(context(row), []).append(row)
    return found


def rank_and_test(rows: list[dict[str, Any]]) -> None:
    """Within each context: ``rank`` by mean top-1 (ties share the best rank), ``twins`` (other
    rows whose training was bit-identical), ``outlier_seeds`` (against the context's median
    seed std), and ``above``: the ranks of the rows this one beats by Welch's test at the 5 %
    level after Holm's correction over all pairs of the context."""
    for group in _contexts(rows).values():
        measured = [r for r in group if r["n"] > 0]
        stds = [r["top1_std"] for r in measured if r["top1_std"] is not None]
        spread = statistics.median(stds) if stds else None
        for row in measured:
            row["outlier_seeds"] = outlier_seeds(row["seeds"], row["top1_runs"], spread)
            row["rank"] = 1 + sum(o["top1_mean"] > row["top1_mean"] for o in measured)
            row["twins"] = [o["label"] for o in measured
                            if o is not row and o["fingerprint"] == row["fingerprint"]]
            row["above"] = []
        pairs = list(combinations(measured, 2))
        p_values = holm([welch(a["top1_runs"], b["top1_runs"])[0] for a, b in pairs])
        for (a, b), p in zip(pairs, p_values):
            if p is not None and p < ALPHA:
                winner, loser = (a, b) if a["top1_mean"] > b["top1_mean"] else (b, a)
                winner["above"].append(loser["rank"])
        for row in measured:
            row["above"].sort()


def _by_seed(row: dict[str, Any]) -> dict[int, float]:
    return dict(zip(row["seeds"], row["top1_runs"]))


def task_rope(task: str, rope: float | None = None) -> float:
    """The ROPE half-width for ``task``: ``rope`` when given, else the task file's, else 0.5."""
    if rope is not None:
        return rope
    from ..config import task_annotations

    return float(task_annotations(task).get("rope", ROPE))


DEFAULTS = " (defaults)"  # names a method's default-parameter row in a --baseline


def describe(row: dict[str, Any]) -> str:
    """How to name a row in --baseline: its label ("NAME (defaults)" for the default
    parameters), and its method source's short hash."""
    name = row["label"].split(" @")[0]
    return f"'{name + DEFAULTS if name == row['method'] else name}@{row['source'][:7]}'"


def pick_baseline(group: list[dict[str, Any]], spec: str) -> dict[str, Any] | None:
    """The row ``spec`` names among one context's measured rows: a method name (when it has
    one configuration there), a label ("a2sg (search=False)", "a2sg (defaults)"), either
    with "@" and the start of the method's source hash. None when nothing matches; an error
    listing the candidates when several do."""
    name, _, source = spec.partition("@")
    defaults = name.endswith(DEFAULTS)
    name = name.removesuffix(DEFAULTS)
    found = [r for r in group if r["n"] > 0 and r["source"].startswith(source)
             and (r["label"].split(" @")[0] == name if defaults or "(" in name
                  else r["method"] == name)]
    if len(found) > 1:
        raise UsageError(f"--baseline '{spec}' matches {len(found)} configurations of "
                         f"{found[0]['task']} (T={found[0]['T']}): "
                         f"{', '.join(map(describe, found))}; name one of them")
    return found[0] if found else None


def refuse_baseline(rows: list[dict[str, Any]], spec: str) -> None:
    """The error for a --baseline that names no measured row: the methods with runs, each with
    the versions (source hashes) that have them."""
    from ..values import did_you_mean

    versions: dict[str, set[str]] = {}
    for r in rows:
        if r["n"] > 0:
            versions.setdefault(r["method"], set()).add(r["source"][:7])
    listed = ", ".join(f"{m}@{'/'.join(sorted(v))}" for m, v in sorted(versions.items()))
    name = spec.partition("@")[0].removesuffix(DEFAULTS)
    hint = "" if name in versions else did_you_mean(name, versions)
    raise UsageError(f"--baseline '{spec}': no finished runs of that method (and version) here"
                     f"{hint}; methods with runs: {listed or 'none'}")


def attach_baseline(rows: list[dict[str, Any]], spec: str, rope: float | None = None,
                    level: float = LEVEL) -> None:
    """Each row's difference to the baseline row of its context, the 95 % Welch interval of
    that difference, and Welch's p-value, raw and Holm-corrected over the rows of the context
    (``significant`` where the corrected p < 0.05); and the Bayesian correlated t-test's
    P(worse), P(equal), P(better) within the ROPE (``rope``, else the task's, else 0.5
    points) with its verdict at ``level`` (``bayes``)."""
    chosen = {key: pick_baseline(group, spec) for key, group in _contexts(rows).items()}
    if not any(chosen.values()):
        refuse_baseline(rows, spec)
    for key, group in _contexts(rows).items():
        base, tests = chosen[key], []
        task_level_rope = task_rope(key[0], rope)  # the task file is read once per context
        for row in group:
            row["baseline"] = {"method": spec, "label": base["label"] if base else None,
                               "delta": None, "ci": None, "p_value": None, "p_holm": None,
                               "significant": False}
            if base is None or row["n"] == 0 or row is base:
                continue
            row["baseline"]["delta"] = row["top1_mean"] - base["top1_mean"]
            p, ci = welch(row["top1_runs"], base["top1_runs"])
            row["baseline"].update(p_value=p, ci=ci)
            row["baseline"]["bayes"] = compare_single(
                _by_seed(base), _by_seed(row), task_level_rope, level)
            tests.append(row)
        for row, p in zip(tests, holm([r["baseline"]["p_value"] for r in tests])):
            row["baseline"].update(p_holm=p, significant=p is not None and p < ALPHA)


def across_tasks(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The aggregate ranking over tasks: the mean ranks of the methods that have runs on every
    task (per task the context with the most methods, one configuration per method: its
    default parameters), the Friedman test's p-value and the Nemenyi critical difference
    (Demšar 2006). Where two or more tasks have the most methods, a task with fewer (a board
    whose sweep is still running) is left out (``left_out``) rather than shrinking the pool."""
    scores: dict[str, dict[str, float]] = {}
    seeds: dict[str, dict[str, dict[int, float]]] = {}
    for (task, *_), group in _contexts(rows).items():
        defaults = {r["method"]: r for r in group if r["n"] > 0 and r["label"] == r["method"]}
        if len(defaults) > len(scores.get(task, {})):  # a task's fullest context
            scores[task] = {m: r["top1_mean"] for m, r in defaults.items()}
            seeds[task] = {m: _by_seed(r) for m, r in defaults.items()}
    widest = max((len(s) for s in scores.values()), default=0)
    full = {t for t, s in scores.items() if len(s) == widest}  # a board still running waits
    kept = full if len(full) >= 2 else set(scores)
    methods = set.intersection(*(set(scores[t]) for t in kept)) if kept else set()
    tasks = sorted(t for t in kept if methods and methods <= set(scores[t]))
    if len(tasks) < 2 or len(methods) < 2:
        raise UsageError("a ranking across tasks needs at least two tasks whose records share "
                         f"two or more methods; tasks here: {', '.join(sorted(scores)) or 'none'}")
    blocks = {t: {m: scores[t][m] for m in methods} for t in tasks}
    ranks = mean_ranks(blocks)
    return {"tasks": tasks, "methods": sorted(sorted(methods), key=ranks.get),
            "mean_rank": ranks, "left_out": sorted(set(scores) - set(tasks)),
            "friedman_p": friedman(blocks), "cd": nemenyi_cd(len(methods), len(tasks)),
            "alpha": ALPHA, "scores": blocks,
            "seeds": {t: {m: seeds[t][m] for m in methods} for t in tasks}}


def bayes_across(result: dict[str, Any], rope: float = ROPE, baseline: str | None = None
                 ) -> dict[str, Any]:
    """From ``across_tasks``'s result: for every ordered pair (a, b) of its methods, P(worse),
    P(equal), P(better) of b against a on a new task (the hierarchical model of `bayes`, the
    per-seed differences over the seeds both ran on each task), and each method's against
    ``baseline``."""
    from itertools import permutations

    from .bayes import hierarchical_many

    methods, seeds = result["methods"], result["seeds"]
    pairs = [(a, b) for a, b in permutations(methods, 2) if a < b]

    def diffs(a: str, b: str) -> list[list[float]]:
        return [[seeds[t][b][s] - seeds[t][a][s] for s in sorted(set(seeds[t][a]) &
                                                                  set(seeds[t][b]))]
                for t in result["tasks"]]

    found = {pair: diffs(*pair) for pair in pairs}
    usable = {pair: d for pair, d in found.items() if all(d)}  # shared seeds on every task
    probs = dict(zip(usable, hierarchical_many(list(usable.values()), rope)))
    probs.update({(b, a): p[::-1] for (a, b), p in list(probs.items())})
    vs = {m: probs[(baseline, m)] for m in methods if (baseline, m) in probs}
    return {"rope": rope, "pairs": probs, "baseline": baseline, "vs_baseline": vs}
