"""One-dimensional Bayesian optimisation for methods that search a surrogate parameter.

The surrogate model is scikit-learn's ``GaussianProcessRegressor`` (Matern 5/2 plus a small noise
term, normalised targets); each new point maximises expected improvement (Jones, Schonlau and
Welch, J. Global Optimization 13, 1998, Eq. 15) over a dense grid of the interval, which is exact
enough in one dimension. The kernel's hyper-parameters are fitted (maximum likelihood) after the
random starts and once halfway, and kept in between: each fit costs tens of milliseconds.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.stats import norm
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

GRID = 512


@dataclass
class SearchResult:
    x: float
    y: float
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)


def expected_improvement(mu: np.ndarray, sd: np.ndarray, best: float) -> np.ndarray:
    """E[max(best - f, 0)] under f ~ N(mu, sd^2), for minimisation."""
    sd = np.maximum(sd, 1e-12)
    z = (best - mu) / sd
    return (best - mu) * norm.cdf(z) + sd * norm.pdf(z)


def _finite(ys: list[float]) -> np.ndarray:
    """Non-finite objective values (e.g. a layer that received no gradient) count as the worst."""
    y = np.asarray(ys, dtype=float)
    ok = np.isfinite(y)
    return np.where(ok, y, y[ok].max() if ok.any() else 0.0)


def bayes_minimize(objective: Callable[[float], float], low: float, high: float,
                   n_obs: int = 5, n_eval: int = 15, seed: int = 0,
                   start: list[float] = ()) -> SearchResult | None:
    """Minimise ``objective`` on [low, high]: the ``start`` points (e.g. the incumbent, so the
    result is never worse than it) and uniform random points, ``n_obs`` in all, then GP-EI
    proposals up to ``n_eval`` evaluations. None when no evaluation was finite."""
    rng = np.random.default_rng(seed)
    first = [min(max(float(x), low), high) for x in start][:n_eval]
    draws = max(0, max(1, min(n_obs, n_eval)) - len(first))
    xs = first + [float(x) for x in rng.uniform(low, high, draws)]
    ys = [objective(x) for x in xs]
    grid = np.linspace(low, high, GRID)
    kernel = ConstantKernel(1.0) * Matern(length_scale=(high - low) / 4, nu=2.5) \
        + WhiteKernel(1e-6, noise_level_bounds=(1e-9, 1e-1))
    refit = {len(xs), (len(xs) + n_eval) // 2}  # when the kernel's hyper-parameters are fitted
    while len(xs) < n_eval:
        tune = len(xs) in refit
        gp = GaussianProcessRegressor(kernel, normalize_y=True, random_state=seed,
                                      optimizer="fmin_l_bfgs_b" if tune else None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit(np.asarray(xs)[:, None], _finite(ys))
        kernel = gp.kernel_
        mu, sd = gp.predict(grid[:, None], return_std=True)
        ei = expected_improvement(mu, sd, float(_finite(ys).min()))
        ei[np.isin(grid, xs)] = -1.0  # never re-evaluate a point
        x = float(grid[int(np.argmax(ei))])
        xs.append(x)
        ys.append(objective(x))
    finite = [i for i, y in enumerate(ys) if math.isfinite(y)]
    if not finite:
        return None
    best = min(finite, key=lambda i: ys[i])
    return SearchResult(xs[best], ys[best], xs, ys)
