"""Ranks, significance and the baseline of leaderboard rows (``compare.summarize`` makes the
rows), and the ranking across tasks (mean rank, Friedman test, Nemenyi critical difference)."""
from __future__ import annotations

import statistics
from itertools import combinations
from typing import Any

from .errors import UsageError
from .flags import outlier_seeds
from .stats import ALPHA, friedman, holm, mean_ranks, nemenyi_cd, welch


def _contexts(rows: list[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    from .compare import context

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


def attach_baseline(rows: list[dict[str, Any]], spec: str) -> None:
    """Each row's difference to the baseline row of its context, the 95 % Welch interval of
    that difference, and Welch's p-value, raw and Holm-corrected over the rows of the context
    (``significant`` where the corrected p < 0.05)."""
    chosen = {key: pick_baseline(group, spec) for key, group in _contexts(rows).items()}
    if not any(chosen.values()):
        methods = sorted({r["method"] for r in rows if r["n"] > 0})
        from .values import did_you_mean

        raise UsageError(f"--baseline '{spec}': no finished runs of that method here"
                         f"{did_you_mean(spec, methods)}; methods with runs: "
                         f"{', '.join(methods) or 'none'}")
    for key, group in _contexts(rows).items():
        base = chosen[key]
        tests = []
        for row in group:
            row["baseline"] = {"method": spec, "label": base["label"] if base else None,
                               "delta": None, "ci": None, "p_value": None, "p_holm": None,
                               "significant": False}
            if base is None or row["n"] == 0 or row is base:
                continue
            row["baseline"]["delta"] = row["top1_mean"] - base["top1_mean"]
            p, ci = welch(row["top1_runs"], base["top1_runs"])
            row["baseline"].update(p_value=p, ci=ci)
            tests.append(row)
        for row, p in zip(tests, holm([r["baseline"]["p_value"] for r in tests])):
            row["baseline"].update(p_holm=p, significant=p is not None and p < ALPHA)


def across_tasks(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The aggregate ranking over tasks: the mean ranks of the methods that have runs on every
    task (per task the context with the most methods, one configuration per method: its
    default parameters), the Friedman test's p-value and the Nemenyi critical difference
    (Demšar 2006)."""
    scores: dict[str, dict[str, float]] = {}
    for (task, *_), group in _contexts(rows).items():
        defaults = {r["method"]: r["top1_mean"] for r in group
                    if r["n"] > 0 and r["label"] == r["method"]}
        if len(defaults) > len(scores.get(task, {})):  # a task's fullest context
            scores[task] = defaults
    methods = set.intersection(*(set(s) for s in scores.values())) if scores else set()
    tasks = sorted(t for t, s in scores.items() if methods and methods <= set(s))
    if len(tasks) < 2 or len(methods) < 2:
        raise UsageError("a ranking across tasks needs at least two tasks whose records share "
                         f"two or more methods; tasks here: {', '.join(sorted(scores)) or 'none'}")
    blocks = {t: {m: scores[t][m] for m in methods} for t in tasks}
    ranks = mean_ranks(blocks)
    return {"tasks": tasks, "methods": sorted(sorted(methods), key=ranks.get),
            "mean_rank": ranks,
            "friedman_p": friedman(blocks), "cd": nemenyi_cd(len(methods), len(tasks)),
            "alpha": ALPHA, "scores": blocks}
