"""Section 4's boundary-aware recipe (Eq. 1): measure a model's support on a task, then bridge or sharpen.

  Support@K = Pass@K (the unbiased estimator, mean over items) on a small validation set
  Acc@1     = as in Table 2, on the same items: the mean accuracy of the n samples (`sampled`, the quantity the
              paper's Table 2 numbers are) or the greedy answer's (`greedy`), per evaluate.acc1
  gap       = Support@K - Acc@1
For a target threshold tau in [0, 1]: Support@K < tau -> bridge (SFT on task- or modality-proximal data: the right
answer is rarely even sampled, so RL has little to sharpen); otherwise -> sharpen (RL concentrates probability on
answers already in the support; monitor Pass@K so RL does not collapse it).

The numbers come from a metrics JSON (`medbridge score`) or are recounted from a generations JSONL (greedy + n
samples per item), for any model and any MCQ item set, a user's own included.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medbridge import MedbridgeError

BRIDGE = "bridge"
SHARPEN = "sharpen"


@dataclass(frozen=True)
class Diagnosis:
    task: str
    model: str | None
    k: int
    support: float  # Support@K = mean unbiased Pass@K
    acc1: float
    n_items: int
    n_samples: int
    source: str  # the file the numbers come from
    acc1_definition: str = "sampled"  # sampled | greedy (medbridge.score.metrics)

    @property
    def gap(self) -> float:
        return self.support - self.acc1


def check_tau(tau) -> float:
    if isinstance(tau, bool) or not isinstance(tau, int | float) or not 0.0 <= float(tau) <= 1.0:
        raise MedbridgeError(f"tau must be a fraction in [0, 1] (e.g. 0.5 for 50%); got {tau!r}")
    return float(tau)


def decide(support: float, tau: float) -> str:
    return BRIDGE if support < check_tau(tau) else SHARPEN


def check_recipe_config(cfg: dict) -> None:
    """recipe.k must be one of evaluate.k: the recipe reads Pass@k from the metrics files."""
    recipe = cfg.get("recipe")
    if not recipe:
        return
    check_tau(recipe["tau"])
    ks = cfg["evaluate"]["k"]
    if "k" in recipe and recipe["k"] not in ks:
        raise MedbridgeError(
            f"recipe.k = {recipe['k']} is not in evaluate.k {ks}: the metrics carry Pass@k only for "
            "those k; add it to evaluate.k or choose one of them"
        )


def from_metrics(m: dict, k: int | None = None, where: str = "metrics", task: str | None = None) -> Diagnosis:
    """Support@K and Acc@1 as a metrics JSON reports them (K: the given one, else the largest it has)."""
    for key in ("acc1", "pass_at_k", "n_items"):
        if key not in m:
            raise MedbridgeError(f"{where} has no {key!r}: not a metrics file from `medbridge score`")
    have = sorted(int(x) for x in m["pass_at_k"])
    if not have:
        raise MedbridgeError(f"{where} reports no Pass@k; rescore with evaluate.k set, or pass --generations")
    k = have[-1] if k is None else int(k)
    if str(k) not in m["pass_at_k"]:
        raise MedbridgeError(
            f"{where} reports Pass@k for k in {have}, not k={k}; choose one of those, or recount "
            "from the generations file (--generations), which allows any k <= its samples"
        )
    return Diagnosis(
        task or m.get("evalset") or Path(where).stem,
        m.get("model"),
        k,
        float(m["pass_at_k"][str(k)]),
        float(m["acc1"]),
        int(m["n_items"]),
        int(m.get("n_samples") or 0),
        where,
        m.get("acc1_definition", "greedy"),
    )


def from_generations(
    rows: list[dict],
    k: int | None = None,
    where: str = "generations",
    task: str | None = None,
    items: list[dict] | None = None,
    model: str | None = None,
    acc1: str = "sampled",
) -> Diagnosis:
    """Recount Support@K (unbiased Pass@K per item, averaged) and Acc@1 (`acc1`: sampled, the mean accuracy of each
    item's samples, as the paper's Table 2; greedy: the greedy answer's) from a generations file.

    With `items`, correctness is recounted from each answer's parsed choice against the item's answer letter, and
    every item must have a generation (a user's own item set is checked, not trusted).
    """
    from medbridge.score.metrics import check_acc1
    from medbridge.score.passk import pass_at_k  # the one estimator of the package

    check_acc1(acc1)

    if not rows:
        raise MedbridgeError(f"{where} holds no generations")
    answer = None
    if items is not None:
        bad = [it.get("id", "?") for it in items if "id" not in it or "answer" not in it]
        if bad:
            raise MedbridgeError(f"item set: items {bad[:3]} lack an `id` or an `answer` letter; fix the JSONL")
        answer = {it["id"]: it["answer"] for it in items}
        ids = {r["id"] for r in rows}
        missing = [i for i in answer if i not in ids]
        if missing:
            raise MedbridgeError(
                f"{where} has no generations for {len(missing)} items of the item set (e.g. "
                f"{missing[:3]}); generate for this item set first"
            )
        rows = [r for r in rows if r["id"] in answer]

    def correct(r: dict, s: dict) -> bool:
        return s["correct"] if answer is None else s.get("choice") == answer[r["id"]]

    ns = [len(r.get("samples", [])) for r in rows]
    k = min(ns) if k is None else int(k)
    if k < 1 or k > min(ns):
        raise MedbridgeError(
            f"Support@{k} needs at least {k} samples per item; {where} has {min(ns)} on some item. "
            "Choose k <= that, or regenerate with more samples (evaluate.n_samples)"
        )
    support = sum(pass_at_k(n, sum(correct(r, s) for s in r["samples"]), k) for n, r in zip(ns, rows)) / len(rows)
    if acc1 == "sampled":
        acc = sum(sum(correct(r, s) for s in r["samples"]) / n for n, r in zip(ns, rows)) / len(rows)
    else:
        acc = sum(correct(r, r["greedy"]) for r in rows) / len(rows)
    return Diagnosis(task or Path(where).stem, model, k, support, acc, len(rows), min(ns), where, acc1)


def explain(d: Diagnosis, tau: float) -> str:
    """The evidence and the recommendation, in words."""
    decision = decide(d.support, tau)
    who = f" (model {d.model})" if d.model else ""
    lines = [
        f"task {d.task}{who}: {d.n_items} items" + (f", {d.n_samples} samples each" if d.n_samples else ""),
        f"  Support@{d.k} = {100 * d.support:.1f}%   Acc@1 ({d.acc1_definition}) = {100 * d.acc1:.1f}%   "
        f"gap = {100 * d.gap:.1f} points",
    ]
    if decision == BRIDGE:
        lines.append(
            f"  Support@{d.k} < tau = {100 * tau:.1f}%  ->  BRIDGE: the right answer is rarely even among "
            f"{d.k} samples, so RL has little to sharpen; first widen support with SFT on task- or "
            "modality-proximal data, then diagnose again."
        )
    else:
        lines.append(
            f"  Support@{d.k} >= tau = {100 * tau:.1f}%  ->  SHARPEN: the right answer is already within "
            f"the model's sampled support; RL can turn the {100 * d.gap:.1f}-point gap into Acc@1. Monitor "
            f"Pass@{d.k} during RL so support does not collapse."
        )
    lines.append(f"  (from {d.source})")
    return "\n".join(lines)


def decisions_frame(diagnoses: list[Diagnosis], tau: float, modality: dict | None = None):
    import pandas as pd

    tau = check_tau(tau)
    return pd.DataFrame(
        [
            {
                "model": d.model,
                "task": d.task,
                "modality": (modality or {}).get(d.task),
                "k": d.k,
                "support_at_k": d.support,
                "acc1": d.acc1,
                "acc1_definition": d.acc1_definition,
                "gap": d.gap,
                "tau": tau,
                "decision": decide(d.support, tau),
                "n_items": d.n_items,
                "source": d.source,
            }
            for d in diagnoses
        ]
    )
