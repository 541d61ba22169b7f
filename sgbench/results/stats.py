"""The statistics behind a leaderboard: Welch's test and interval for a difference of means,
Holm's correction over a family of tests, and the Friedman test with the Nemenyi critical
difference for a ranking across tasks (Demšar, JMLR 7, 2006, sections 3.1.3 and 3.2.2).
The tests and distributions are scipy's; this module only arranges them."""
from __future__ import annotations

import math
from typing import Sequence

ALPHA = 0.05


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float | None, tuple | None]:
    """Welch's t-test of mean(a) - mean(b): its two-sided p-value and 95 % interval, or None
    where there are fewer than two values on a side or both sides are constant."""
    if len(a) < 2 or len(b) < 2:
        return None, None
    from scipy.stats import ttest_ind

    test = ttest_ind(a, b, equal_var=False)
    p = float(test.pvalue)
    if not math.isfinite(p):
        return None, None
    low, high = test.confidence_interval(1 - ALPHA)
    return p, (float(low), float(high))


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (Holm, Scand. J. Statist. 6, 1979): the i-th smallest
    of m is multiplied by m - i + 1, made monotone and capped at 1. None stays None and does not
    count in m."""
    known = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(known):
        running = max(running, min(1.0, (len(known) - rank) * p))
        adjusted[index] = running
    return adjusted


def mean_ranks(scores: dict[str, dict[str, float]]) -> dict[str, float]:
    """Each method's mean rank over the blocks (tasks) of ``scores[block][method]`` (higher
    score, better rank 1; ties share the mean of their ranks)."""
    from scipy.stats import rankdata

    methods = sorted(next(iter(scores.values())))
    totals = dict.fromkeys(methods, 0.0)
    for block in scores.values():
        ranks = rankdata([-block[m] for m in methods])
        for method, rank in zip(methods, ranks):
            totals[method] += float(rank)
    return {m: totals[m] / len(scores) for m in methods}


def friedman(scores: dict[str, dict[str, float]]) -> float | None:
    """The p-value of the Friedman test that all methods rank alike over the blocks, or None
    with fewer than 2 blocks or 3 methods."""
    methods = sorted(next(iter(scores.values()), {}))
    if len(scores) < 2 or len(methods) < 3:
        return None
    from scipy.stats import friedmanchisquare

    p = float(friedmanchisquare(*[[block[m] for block in scores.values()]
                                   for m in methods]).pvalue)
    return p if math.isfinite(p) else None


def nemenyi_cd(k: int, n: int, alpha: float = ALPHA) -> float:
    """The Nemenyi critical difference of mean ranks for k methods over n blocks:
    q_alpha sqrt(k (k + 1) / (6 n)), q_alpha the studentized range quantile / sqrt 2
    (Demšar 2006, section 3.2.2)."""
    from scipy.stats import studentized_range

    q = float(studentized_range.ppf(1 - alpha, k, math.inf)) / math.sqrt(2)
    return q * math.sqrt(k * (k + 1) / (6 * n))


def mean_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """The 95 % t interval of the mean of ``values`` (None for fewer than two)."""
    if len(values) < 2:
        return None
    from scipy.stats import t

    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = float(t.ppf(1 - ALPHA / 2, len(values) - 1)) * sd / math.sqrt(len(values))
    return mean - half, mean + half


def tasks_needed(k: int, gap: float, alpha: float = ALPHA, most: int = 10_000) -> int | None:
    """The fewest blocks (tasks) at which Nemenyi's critical difference for k methods falls to
    ``gap`` mean-rank units or below (None beyond ``most``): CD scales as 1 / sqrt(n)."""
    cd_one = nemenyi_cd(k, 1, alpha)
    n = math.ceil((cd_one / gap) ** 2)
    return n if n <= most else None
