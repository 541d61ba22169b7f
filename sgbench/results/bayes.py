"""Bayesian comparisons that say "better", "practically equal" or "worse", with a probability.

- One task: the Bayesian correlated t-test (Benavoli, Corani, Demšar, Zaffalon, "Time for a
  change", JMLR 18, 2017, section 4.1 and Eq. 6 there; ``baycomp.two_on_single`` implements it).
  The per-seed differences d_s = b_s - a_s have a Student posterior of their mean,
  t_{n-1}(mean(d), (1/n + rho / (1 - rho)) var(d)); seeds are independent runs, so rho = 0.
  Runs are paired by seed (sgbench's seed fixes the initial weights and the data order of every
  method alike); where fewer than two seeds are shared, the two means' posteriors are taken as
  independent and their difference as Welch-Satterthwaite's Student approximation.
- Across tasks: a hierarchical model in the spirit of Corani, Benavoli, Demšar, Mangili,
  Zaffalon (Machine Learning 106, 2017), simplified and documented in docs/statistics.md:
  d_ij ~ N(delta_i, sigma_i^2) for the seeds j of task i, delta_i ~ N(delta_0, tau^2), flat
  delta_0, tau and sigma_i uniform on (0, 1000 x the differences' spread) as there (a task with
  one seed: p(sigma_i) ~ 1/sigma_i); sampled by Gibbs, the probabilities are those of a new
  task's delta ~ N(delta_0, tau^2). Corani's model has a Student delta_i; this one is normal.

Probabilities are of (worse, equal, better) for b against a, with a region of practical
equivalence (ROPE) of half-width ``rope`` points of top-1: "equal" is |difference| < rope.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

ROPE = 0.5  # points of top-1 (%), unless a task's `rope` or --rope says otherwise
LEVEL = 0.95  # the probability a verdict needs
MAX_SEEDS = 100  # the most seeds a "more seeds" suggestion looks at


@dataclass(frozen=True)
class Posterior:
    """A Student posterior of a mean difference (scale 0: all its mass at ``mean``)."""

    mean: float
    scale: float
    df: float

    def probs(self, rope: float) -> tuple[float, float, float]:
        """P(difference < -rope), P(|difference| <= rope), P(difference > rope)."""
        if self.scale == 0:
            worse, better = float(self.mean < -rope), float(self.mean > rope)
        else:
            from scipy.stats import t

            worse = float(t.cdf(-rope, self.df, self.mean, self.scale))
            better = float(t.sf(rope, self.df, self.mean, self.scale))
        return worse, max(0.0, 1.0 - worse - better), better


def correlated_t(diffs: Sequence[float], rho: float = 0.0) -> Posterior:
    """Benavoli et al. 2017, Eq. 6: t_{n-1}(mean, (1/n + rho/(1-rho)) var) of n >= 2
    differences whose correlation is ``rho`` (0 for independent runs)."""
    d = np.asarray(diffs, float)
    n = len(d)
    var = float(np.var(d, ddof=1)) * (1 / n + rho / (1 - rho))
    return Posterior(float(d.mean()), math.sqrt(var), n - 1)


def unpaired(a: Sequence[float], b: Sequence[float]) -> Posterior:
    """mean(b) - mean(a) of two independent samples (n >= 2 each): Student with
    Welch-Satterthwaite's degrees of freedom."""
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    var = float(va + vb)
    df = var ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if var > 0 else 1.0
    return Posterior(float(np.mean(b) - np.mean(a)), math.sqrt(var), float(df))


def posterior(a: Mapping[int, float], b: Mapping[int, float]) -> Posterior | None:
    """The posterior of b's mean top-1 minus a's from per-seed scores (seed -> top-1): paired
    over the seeds both have when there are two or more, else unpaired; None when a side has
    a single seed and they share fewer than two."""
    common = sorted(set(a) & set(b))
    if len(common) >= 2:
        return correlated_t([b[s] - a[s] for s in common])
    if len(a) >= 2 and len(b) >= 2:
        return unpaired(list(a.values()), list(b.values()))
    return None


UNDECIDED = "undecided (more seeds)"


def verdict(probs: tuple[float, float, float] | None, level: float = LEVEL) -> str:
    for name, p in zip(("worse", "equal", "better"), probs or ()):
        if p >= level:
            return name
    return UNDECIDED


def seeds_needed(post: Posterior, n: int, rope: float, level: float = LEVEL) -> int | None:
    """The fewest seeds at which a posterior with this mean and per-seed spread (its scale is
    spread / sqrt(n)) reaches a verdict, or None when none up to MAX_SEEDS would (a mean at
    the ROPE's edge)."""
    spread = post.scale * math.sqrt(n)
    for m in range(n + 1, MAX_SEEDS + 1):
        if verdict(Posterior(post.mean, spread / math.sqrt(m), m - 1).probs(rope),
                   level) != UNDECIDED:
            return m
    return None


def compare_single(a: Mapping[int, float], b: Mapping[int, float], rope: float = ROPE,
                   level: float = LEVEL) -> dict:
    """b against a on one task: the three probabilities, the verdict, and where undecided
    the seeds the posterior suggests."""
    post = posterior(a, b)
    probs = post.probs(rope) if post is not None else None
    said = verdict(probs, level)
    need = None
    if post is not None and said == UNDECIDED:
        shared = len(set(a) & set(b))
        need = seeds_needed(post, shared if shared >= 2 else min(len(a), len(b)), rope, level)
    return {"p_worse": probs and probs[0], "p_equal": probs and probs[1],
            "p_better": probs and probs[2], "verdict": said, "seeds_needed": need,
            "rope": rope, "level": level}


# -- across tasks ---------------------------------------------------------------------------
GIBBS_SAMPLES, GIBBS_BURN = 4000, 400


def hierarchical(diffs: Sequence[Sequence[float]], rope: float = ROPE, seed: int = 0
                 ) -> tuple[float, float, float]:
    """P(worse), P(equal), P(better) of the difference on a new task, from per-seed
    differences on each task (``diffs[i]``: task i's seeds, one or more), by the model in the
    module docstring."""
    return hierarchical_many([diffs], rope, seed)[0]


def hierarchical_many(pairs: Sequence[Sequence[Sequence[float]]], rope: float = ROPE,
                      seed: int = 0) -> list[tuple[float, float, float]]:
    """``hierarchical`` for many comparisons over the same number of tasks (two or more) at
    once: one Gibbs chain each, run side by side as arrays."""
    q = len(pairs[0])
    if q < 2 or any(len(p) != q for p in pairs) or any(not len(d) for p in pairs for d in p):
        raise ValueError("every comparison needs differences on the same two or more tasks")
    width = max(len(d) for p in pairs for d in p)
    values, mask = np.zeros((len(pairs), q, width)), np.zeros((len(pairs), q, width))
    for i, p in enumerate(pairs):
        for k, d in enumerate(p):
            values[i, k, :len(d)], mask[i, k, :len(d)] = d, 1
    counts, sums = mask.sum(2), values.sum(2)
    means = sums / counts
    spread = np.sqrt((mask * (values - means[..., None]) ** 2).sum(2) / counts).mean(1)
    scale = np.maximum.reduce([spread, means.std(1), np.full(len(pairs), max(rope / 10, 1e-6))])
    low, high = (1e-6 * scale)[:, None], (1000 * scale)[:, None]  # tau, sigma_i in (0, 1000 s)
    shape_sigma = np.maximum(counts - 1, 1) / 2  # uniform prior; one seed: p(sigma) ~ 1/sigma
    rng = np.random.default_rng(seed)
    delta, delta0 = means, means.mean(1)
    sigma, tau = np.repeat(scale[:, None], q, 1), scale[:, None]
    draws = np.empty((len(pairs), GIBBS_SAMPLES))
    for step in range(GIBBS_BURN + GIBBS_SAMPLES):
        precision = counts / sigma ** 2 + 1 / tau ** 2
        centre = (sums / sigma ** 2 + delta0[:, None] / tau ** 2) / precision
        delta = centre + rng.standard_normal(delta.shape) / np.sqrt(precision)
        delta0 = delta.mean(1) + tau[:, 0] / math.sqrt(q) * rng.standard_normal(len(pairs))
        within = (mask * (values - delta[..., None]) ** 2).sum(2)
        sigma = _inverse_gamma_scale(rng, shape_sigma, within / 2, low, high)
        between = ((delta - delta0[:, None]) ** 2).sum(1, keepdims=True)
        tau = _inverse_gamma_scale(rng, np.full_like(between, (q - 1) / 2), between / 2, low,
                                   high)
        if step >= GIBBS_BURN:
            draws[:, step - GIBBS_BURN] = delta0 + tau[:, 0] * rng.standard_normal(len(pairs))
    worse, better = (draws < -rope).mean(1), (draws > rope).mean(1)
    return [(float(w), float(1 - w - b), float(b)) for w, b in zip(worse, better)]


def _inverse_gamma_scale(rng: np.random.Generator, shape: np.ndarray, rate: np.ndarray,
                         low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """s with s^2 ~ InvGamma(shape, rate) (the conditional of a scale under a uniform prior on
    it, Gelman, Bayesian Analysis 1, 2006), kept inside [low, high]."""
    s = np.sqrt(rate / rng.gamma(shape))
    return np.clip(s, low, high)
