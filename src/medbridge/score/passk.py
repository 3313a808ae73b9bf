"""Pass@k with the unbiased estimator (Chen et al., 2021): the chance that k of n samples, drawn without
replacement, include at least one of the c correct ones. The authors' code (inference.py `eval_one_row`) draws
exactly k fresh samples per item and counts whether any is correct: also unbiased for that k, only noisier (one
draw of k where this averages over every k-subset of n samples) and one k per run. This gives every k <= n from one
run of n samples."""

from __future__ import annotations

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k), computed as a stable product."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n; got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))
