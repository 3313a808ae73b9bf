"""Metrics of one generations file: Acc@1, unbiased Pass@k for every k, format failures, bootstrap CIs.

Acc@1 has two definitions, both always computed (`acc1_greedy`, `acc1_sampled`); `acc1` is the one the run reports
(`evaluate.acc1`, named in `acc1_definition`):
  sampled: per item, the share of its n samples that are correct, averaged over items (the unbiased Pass@1 at n).
           The paper's Table 2 cells are this quantity (e.g. BreastMNIST 54.99 % = 739 / (84 items x 16 samples)).
  greedy:  the greedy answer's correctness, averaged over items (what the paper's text says).
A greedy-only file (no samples: Table 3) has only the greedy definition, whatever is asked.
"""

from __future__ import annotations

import numpy as np

from medbridge import MedbridgeError
from medbridge.score.passk import pass_at_k
from medbridge.score.stats import bootstrap_ci

ACC1 = ("sampled", "greedy")


def item_pass_at_k(row: dict, k: int) -> float:
    n = len(row["samples"])
    return pass_at_k(n, sum(s["correct"] for s in row["samples"]), k)


def check_acc1(acc1: str) -> str:
    if acc1 not in ACC1:
        raise MedbridgeError(
            f"evaluate.acc1 {acc1!r} is unknown; choose one of {list(ACC1)} (sampled: the mean "
            "accuracy of the n samples, as the paper's Table 2 numbers; greedy: the greedy answer)"
        )
    return acc1


def acc1_definition(cfg: dict) -> str:
    """The run's Acc@1 definition (evaluate.acc1; default sampled, as the paper's numbers)."""
    return check_acc1(cfg["evaluate"]["acc1"])


def compute_metrics(rows: list[dict], ks: list[int], n_boot: int, seed: int, acc1: str = "sampled") -> dict:
    """`acc1`: which Acc@1 the file reports as `acc1` (see the module docstring); both are kept."""
    check_acc1(acc1)
    if not rows:
        raise MedbridgeError("no generations to score; the item set was empty")
    n_samples = {len(r["samples"]) for r in rows}
    if len(n_samples) != 1:
        raise MedbridgeError(f"rows have different sample counts {sorted(n_samples)}; regenerate the file")
    n = n_samples.pop()
    ks = [k for k in ks if k <= n]  # none for a greedy-only run (Table 3)
    greedy = np.array([r["greedy"]["correct"] for r in rows], dtype=float)
    sampled = np.array([np.mean([s["correct"] for s in r["samples"]]) for r in rows], dtype=float) if n else None
    definition = acc1 if n else "greedy"
    chosen = sampled if definition == "sampled" else greedy
    ci = {"greedy": list(bootstrap_ci(greedy, n_boot, seed))}
    if sampled is not None:
        ci["sampled"] = list(bootstrap_ci(sampled, n_boot, seed))
    out = {
        "n_items": len(rows),
        "n_samples": n,
        "acc1": float(chosen.mean()),
        "acc1_ci": ci[definition],
        "acc1_definition": definition,
        "acc1_greedy": float(greedy.mean()),
        "acc1_greedy_ci": ci["greedy"],
        "acc1_sampled": None if sampled is None else float(sampled.mean()),
        "acc1_sampled_ci": ci.get("sampled", [None, None]),
        "pass_at_k": {},
        "pass_at_k_ci": {},
        # per-item values, in item order: paired comparisons of two models on the same items (RQ3 deltas)
        "per_item": {
            "id": [r["id"] for r in rows],
            "acc1": chosen.tolist(),
            "acc1_greedy": greedy.tolist(),
            "acc1_sampled": None if sampled is None else sampled.tolist(),
            "pass_at_k": {},
        },
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
