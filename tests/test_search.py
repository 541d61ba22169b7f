"""The one-dimensional Bayesian optimiser behind A2SG's window search."""
import math


from sgbench.search import bayes_minimize, expected_improvement


def test_finds_the_minimum_of_a_smooth_function():
    calls = []

    def f(x):
        calls.append(x)
        return (x - 0.7) ** 2 + 0.02 * math.sin(12 * x)

    found = bayes_minimize(f, 0.1, 2.0, n_obs=4, n_eval=14, seed=3)
    assert len(calls) == 14
    grid_best = min((0.1 + i * 1.9 / 2000 for i in range(2001)), key=f)
    assert abs(found.x - grid_best) < 0.01
    assert found.y == min(found.ys) and all(0.1 <= x <= 2.0 for x in found.xs)


def test_non_finite_values_are_the_worst_and_all_non_finite_gives_none():
    found = bayes_minimize(lambda x: math.nan if x < 1.0 else x, 0.1, 2.0, n_obs=5, n_eval=10)
    assert found.x >= 1.0
    assert bayes_minimize(lambda x: math.nan, 0.1, 2.0, n_obs=2, n_eval=4) is None


def test_expected_improvement_prefers_low_mean_and_high_uncertainty():
    import numpy as np
    ei = expected_improvement(np.array([0.0, 1.0, 1.0]), np.array([0.1, 0.1, 1.0]), best=0.5)
    assert ei[0] > ei[2] > ei[1] >= 0
