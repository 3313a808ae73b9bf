from itertools import combinations

import pytest

from medbridge.score.passk import pass_at_k


def brute_force(n, c, k):
    """Fraction of all k-subsets of n samples (c of them correct) that contain a correct one."""
    samples = [1] * c + [0] * (n - c)
    subsets = list(combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_unbiased_estimator_equals_subset_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force(n, c, k), abs=1e-12)


def test_differs_from_first_k_counting():
    # samples [wrong, wrong, right, wrong]: "any of the first 2 correct" says 0; the estimator says 1/2
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)


def test_rejects_impossible_arguments():
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)
