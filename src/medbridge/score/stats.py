"""Seeded percentile-bootstrap confidence intervals of a mean over items."""

from __future__ import annotations

import numpy as np


def bootstrap_ci(values, n_boot: int, seed: int, level: float = 0.95) -> tuple[float, float] | tuple[None, None]:
    """95% CI of mean(values) from `n_boot` resamples of the items; (None, None) when n_boot is 0."""
    values = np.asarray(values, dtype=float)
    if n_boot == 0 or values.size == 0:
        return None, None
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))
