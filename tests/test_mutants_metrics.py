"""Metrics by value (issue #25): intervals are bootstraps of the per-item values, the format-failure rate per answer
form, the bootstrap's seeding and its level. Each test kills mutants the older tests let through."""

from __future__ import annotations

import numpy as np
import pytest

from medbridge.generate.run import parsed
from medbridge.score.metrics import compute_metrics
from medbridge.score.passk import pass_at_k
from medbridge.score.stats import bootstrap_ci

OPTIONS = {"A": "cyst", "B": "tumour", "C": "normal", "D": "stone"}


def _row(i: int, greedy: str, samples: list[str], answer: str = "A") -> dict:
    return {
        "id": f"q{i}",
        "answer": answer,
        "options": OPTIONS,
        "greedy": parsed(greedy, OPTIONS, answer, "first"),
        "samples": [parsed(t, OPTIONS, answer, "first") for t in samples],
    }


def _rows() -> list[dict]:
    """40 items whose greedy accuracy (10%) is far from their Pass@2 and Pass@4 (~60-75%): an interval bootstrapped
    from the wrong per-item values cannot contain the right point estimate."""
    rng = np.random.default_rng(5)
    rows = []
    for i in range(40):
        n_right = int(rng.integers(0, 5))
        samples = ["<answer>A</answer>"] * n_right + ["<answer>B</answer>"] * (4 - n_right)
        rows.append(_row(i, "<answer>A</answer>" if i % 10 == 0 else "<answer>C</answer>", samples))
    return rows


def test_intervals_are_a_bootstrap_of_the_per_item_values():
    rows = _rows()
    m = compute_metrics(rows, [1, 2, 4], n_boot=500, seed=11, acc1="greedy")  # far from Pass@k: a mix-up shows
    acc = [float(r["greedy"]["correct"]) for r in rows]
    assert m["per_item"]["acc1"] == acc
    assert tuple(m["acc1_ci"]) == bootstrap_ci(acc, 500, 11)
    for k in (1, 2, 4):
        per_item = m["per_item"]["pass_at_k"][str(k)]
        assert m["pass_at_k"][str(k)] == pytest.approx(np.mean(per_item))
        lo, hi = m["pass_at_k_ci"][str(k)]
        # each k's interval is its own seeded bootstrap (seed + k) of that k's per-item values
        assert (lo, hi) == bootstrap_ci(per_item, 500, 11 + k)
        assert lo <= m["pass_at_k"][str(k)] <= hi
        assert hi < 1 and lo > m["acc1"] + 0.2  # far from the greedy accuracy's values
    assert m["acc1_ci"][0] <= m["acc1"] <= m["acc1_ci"][1]


@pytest.mark.parametrize(
    "greedy,rate",
    [
        ("<think>x</think><answer>B</answer>", 0.0),  # the closed tag
        ("<think>x</think><answer>B", 0.0),  # an unclosed tag still follows the format
        ("The answer is B", 1.0),
    ],  # no tag at all: a format failure, even though a choice is read
)
def test_format_failure_rate_per_answer_form(greedy, rate):
    rows = [_row(i, greedy, ["<answer>B</answer>"]) for i in range(3)]
    m = compute_metrics(rows, [1], n_boot=0, seed=0)
    assert m["format_failure_rate"] == rate
    assert m["no_choice_rate"] == 0.0  # each form yields the letter B
    mixed = [_row(0, "<answer>B</answer>", []), _row(1, "<answer>C", []), _row(2, "B", []), _row(3, "nothing", [])]
    got = compute_metrics(mixed, [], n_boot=0, seed=0)
    assert got["format_failure_rate"] == 0.5 and got["no_choice_rate"] == 0.25


def test_bootstrap_is_seeded_on_continuous_values():
    """With continuous values every resample has its own mean, so an unseeded bootstrap can never repeat itself
    (two-valued data made the old check pass unseeded 87% of the time)."""
    values = np.random.default_rng(0).normal(size=60)
    first = bootstrap_ci(values, 300, seed=4)
    assert bootstrap_ci(values, 300, seed=4) == first
    assert bootstrap_ci(values, 300, seed=5) != first
    assert first[0] < values.mean() < first[1]


@pytest.mark.parametrize("level,z", [(0.95, 1.960), (0.90, 1.645)])
def test_interval_width_tells_the_level_apart(level, z):
    """2000 normal values: the bootstrap interval is mean +- z * se within ~1.5% (4000 resamples), so 3% tells a 95%
    interval (z 1.96) from a 93% one (z 1.81)."""
    values = np.random.default_rng(1).normal(size=2000)
    se = values.std() / np.sqrt(values.size)
    lo, hi = bootstrap_ci(values, 4000, seed=0, level=level)
    assert (hi - lo) / (2 * se) == pytest.approx(z, rel=0.03)
    assert (lo + hi) / 2 == pytest.approx(values.mean(), abs=0.1 * se)
    if level == 0.95:  # the default level is 95%
        assert bootstrap_ci(values, 4000, seed=0) == (lo, hi)


@pytest.mark.parametrize("where", [0, 9])
def test_every_item_is_resampled_at_the_same_rate(where):
    """One correct item of 10, first or last: its count in a resample is Binomial(10, 0.1), whose 97.5% quantile is 3
    (P(X <= 2) = 0.930, P(X <= 3) = 0.987); an index range that misses the first item, or draws the last twice as
    often, moves it to 0 or 4."""
    values = np.zeros(10)
    values[where] = 1.0
    lo, hi = bootstrap_ci(values, 4000, seed=2)
    assert lo == 0.0 and hi == pytest.approx(0.3)


def test_bootstrap_of_one_item_and_of_none():
    assert bootstrap_ci([0.7], 100, seed=0) == (0.7, 0.7)  # one item: every resample is that item
    assert bootstrap_ci([], 100, seed=0) == (None, None)


@pytest.mark.parametrize("n,c,k", [(4, -1, 1), (4, 2, 0), (4, 5, 1), (4, 1, 5)])
def test_pass_at_k_rejects_counts_outside_their_range(n, c, k):
    with pytest.raises(ValueError, match="pass_at_k needs"):
        pass_at_k(n, c, k)
