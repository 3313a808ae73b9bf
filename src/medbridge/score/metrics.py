"""Metrics of one generations file: Acc@1 (greedy), unbiased Pass@k for every k, format failures, bootstrap CIs."""

from __future__ import annotations

import numpy as np

from medbridge import MedbridgeError
from medbridge.score.passk import pass_at_k
from medbridge.score.stats import bootstrap_ci


def item_pass_at_k(row: dict, k: int) -> float:
    n = len(row["samples"])
    return pass_at_k(n, sum(s["correct"] for s in row["samples"]), k)


def compute_metrics(rows: list[dict], ks: list[int], n_boot: int, seed: int) -> dict:
    if not rows:
        raise MedbridgeError("no generations to score; the item set was empty")
    n_samples = {len(r["samples"]) for r in rows}
    if len(n_samples) != 1:
        raise MedbridgeError(f"rows have different sample counts {sorted(n_samples)}; regenerate the file")
    n = n_samples.pop()
    ks = [k for k in ks if k <= n]  # none for a greedy-only run (Table 3)
    acc = np.array([r["greedy"]["correct"] for r in rows], dtype=float)
    out = {
        "n_items": len(rows),
        "n_samples": n,
        "acc1": float(acc.mean()),
        "acc1_ci": list(bootstrap_ci(acc, n_boot, seed)),
        "pass_at_k": {},
        "pass_at_k_ci": {},
        # per-item values, in item order: paired comparisons of two models on the same items (RQ3 deltas)
        "per_item": {"id": [r["id"] for r in rows], "acc1": acc.tolist(), "pass_at_k": {}},
        # an answer with no tag at all: the model ignored the required <answer> format
        "format_failure_rate": float(np.mean([r["greedy"]["method"] not in ("tag", "unclosed") for r in rows])),
        "no_choice_rate": float(np.mean([r["greedy"]["choice"] is None for r in rows])),
    }
    for k in ks:
        per_item = np.array([item_pass_at_k(r, k) for r in rows])
        out["pass_at_k"][str(k)] = float(per_item.mean())
        out["pass_at_k_ci"][str(k)] = list(bootstrap_ci(per_item, n_boot, seed + k))
        out["per_item"]["pass_at_k"][str(k)] = per_item.tolist()
    return out
