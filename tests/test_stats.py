"""The bootstrap intervals against cases whose answer is known in closed form."""

import numpy as np
import pytest

from medbridge.score.stats import bootstrap_ci


def test_bernoulli_half_n400_width_matches_the_normal_approximation():
    # 400 items, half correct: the mean's standard error is sqrt(0.25 / 400) = 0.025, so a 95% interval is
    # 2 * 1.96 * 0.025 = 0.098 wide, centred on 0.5.
    values = np.array([1.0] * 200 + [0.0] * 200)
    lo, hi = bootstrap_ci(values, n_boot=4000, seed=0)
    assert hi - lo == pytest.approx(0.098, abs=0.008)
    assert (lo + hi) / 2 == pytest.approx(0.5, abs=0.006)


def test_interval_shrinks_with_n_and_is_seeded():
    small = bootstrap_ci(np.array([1.0, 0.0] * 25), 2000, seed=3)
    large = bootstrap_ci(np.array([1.0, 0.0] * 400), 2000, seed=3)
    assert (large[1] - large[0]) < (small[1] - small[0]) / 3  # width ~ 1/sqrt(n): 16x the items, 1/4 the width
    assert bootstrap_ci(np.array([1.0, 0.0] * 25), 2000, seed=3) == small


def test_constant_values_have_a_point_interval():
    assert bootstrap_ci(np.ones(30), 500, seed=0) == (1.0, 1.0)
    assert bootstrap_ci(np.ones(30), 0, seed=0) == (None, None)
