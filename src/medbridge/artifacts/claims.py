"""The paper's qualitative claims about RL, checked on a run's own artifacts: held or not held, with the numbers.

Task: the in-domain RQ3 pair whose task the SFT bridge trains on (`train.sft.datasets`; organamnist in the tiny
profile), else the first in-domain pair (the paper profile's sft is a hub model). Roles `base` and `sft` (both
`rq3.inits`); K = max(evaluate.k); tau = recipe.tau (the recipe's support threshold).
1. support: the base model has little support (Pass@K < tau) and SFT expands it (Pass@K after SFT - base, paired
   95% bootstrap CI above zero).
2. sharpening: GRPO from sft raises in-domain Acc@1 (the Figure 2 cell's paired CI above zero), toward its Pass@K
   (the gap Pass@K - Acc@1 shown before and after). Acc@1 is the run's (evaluate.acc1: by default the mean accuracy
   of the samples, what the paper's Table 2 reports); the other definition (greedy by default) is shown beside it,
   with its own paired CI, from the metrics of sft and of GRPO from sft. Only the run's Acc@1 decides the claim.
3. no support, no gain: GRPO from base gains little in-domain Acc@1 (the Figure 2 cell's CI includes zero, or the
   change is not positive).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medbridge import MedbridgeError
from medbridge.artifacts.rq3 import ACC1_LABEL, load_metrics, paired_delta_ci, rq3_model
from medbridge.artifacts.tables import write_table
from medbridge.config import schema_default
from medbridge.io import write_text


def claims_task(cfg: dict) -> str | None:
    """The task the claims are checked on, or None when the config has no grid to check them (no in-domain pair,
    or base and sft are not both RQ3 inits)."""
    rq3 = cfg["rq3"]
    tasks = [t for t, e in rq3["pairs"].get("in_domain", []) if t == e]
    if not tasks or not {"base", "sft"} <= set(rq3["inits"]):
        return None
    sft_tasks = cfg["train"]["sft"]["datasets"]
    return next((t for t in tasks if t in sft_tasks), tasks[0])


def claims_inputs(cfg: dict) -> list[tuple[str, str]]:
    """(model, evalset) metrics the claims read besides Figure 2's CSV: base and sft (claim 1's Pass@K), and GRPO from
    sft (claim 2's other Acc@1 definition, beside it); none when there is nothing to check."""
    task = claims_task(cfg)
    return [("base", task), ("sft", task), (rq3_model(cfg, "sft", task), task)] if task else []


def _cell(fig2: pd.DataFrame, init: str, task: str, metric: str) -> pd.Series:
    sel = fig2[
        (fig2.regime == "in_domain")
        & (fig2.init == init)
        & (fig2.train_task == task)
        & (fig2.eval_task == task)
        & (fig2.metric == metric)
    ]
    if len(sel) != 1:
        raise MedbridgeError(f"Figure 2's CSV has no in-domain {metric} row for init {init} on {task}; remake it")
    return sel.iloc[0]


def _includes_zero(row: pd.Series) -> bool | None:
    """The cell's `ci_includes_zero` as read back from CSV (bool, 'True'/'False', or empty without a CI)."""
    v = row.ci_includes_zero
    return None if pd.isna(v) else str(v) == "True"


def _acc1_label(row: pd.Series) -> str:
    """'Acc@1 (mean of samples)' / 'Acc@1 (greedy)' as Figure 2's CSV records it; 'Acc@1' for an older CSV."""
    definition = row.get("acc1_definition")
    return f"Acc@1 ({ACC1_LABEL[definition]})" if isinstance(definition, str) and definition in ACC1_LABEL else "Acc@1"


def _pp(x: float) -> str:
    return f"{100 * x:.1f}"


def _ci(lo, hi) -> str:
    return "no CI (evaluate.bootstrap 0)" if lo is None or pd.isna(lo) else f"[{100 * lo:+.1f}, {100 * hi:+.1f}] pp"


def beside_acc1(before: dict, after: dict, definition: str, n_boot: int, seed: int, where: str) -> dict | None:
    """The Acc@1 definition other than the run's (`definition`, as Figure 2's CSV names it) of two metrics files on the
    same items: {definition, before, after, delta, ci_low, ci_high}; None where a file lacks it (a greedy-only file
    has no sample mean; an older `medbridge score` kept no per-item greedy values)."""
    other = {"sampled": "greedy", "greedy": "sampled"}.get(definition)
    if other is None:
        return None
    items = [m["per_item"].get(f"acc1_{other}") for m in (before, after)]
    if any(v is None for v in items):
        return None
    b, a = (dict(zip(m["per_item"]["id"], v, strict=True)) for m, v in zip((before, after), items, strict=True))
    lo, hi = paired_delta_ci(b, a, n_boot, seed, where)
    b_mean, a_mean = sum(b.values()) / len(b), sum(a.values()) / len(a)
    return {
        "definition": other,
        "before": b_mean,
        "after": a_mean,
        "delta": a_mean - b_mean,
        "ci_low": lo,
        "ci_high": hi,
    }


def required_task(cfg: dict) -> str:
    """claims_task, or an error saying what the config lacks."""
    task = claims_task(cfg)
    if task is None:
        raise MedbridgeError(
            "the claims need an in-domain rq3.pairs entry [task, task] and rq3.inits with base and sft"
        )
    return task


def claims_table(cfg: dict, metrics: dict[tuple[str, str], dict], fig2: pd.DataFrame) -> pd.DataFrame:
    task = required_task(cfg)
    k = max(cfg["evaluate"]["k"])
    tau = cfg["recipe"]["tau"] if "recipe" in cfg else schema_default("recipe.tau")
    n_boot = cfg["evaluate"]["bootstrap"]
    for key in claims_inputs(cfg):
        if key not in metrics:
            raise MedbridgeError(f"no metrics for {key[0]} on {key[1]}; pass metrics/{key[0]}/{key[1]}.json")
    base, sft = metrics[("base", task)], metrics[("sft", task)]
    pk = str(k)
    if pk not in base["pass_at_k"] or pk not in sft["pass_at_k"]:
        raise MedbridgeError(f"metrics of base/sft on {task} have no Pass@{k}; rescore with evaluate.k including it")
    items = {
        m["model"]: dict(zip(m["per_item"]["id"], m["per_item"]["pass_at_k"][pk], strict=True)) for m in (base, sft)
    }
    lo, hi = paired_delta_ci(items["base"], items["sft"], n_boot, cfg["seed"], f"sft vs base on {task} (pass@{k})")
    b_pk, s_pk = float(base["pass_at_k"][pk]), float(sft["pass_at_k"][pk])
    support_held = b_pk < tau and lo is not None and lo > 0

    acc, passk = _cell(fig2, "sft", task, "acc1"), _cell(fig2, "sft", task, f"pass@{k}")
    sharpen_held = _includes_zero(acc) is False and acc.delta > 0
    base_acc = _cell(fig2, "base", task, "acc1")
    label = _acc1_label(acc)
    little_held = _includes_zero(base_acc) is not False or base_acc.delta <= 0
    rl = rq3_model(cfg, "sft", task)
    beside = beside_acc1(
        sft,
        metrics[(rl, task)],
        acc.get("acc1_definition"),
        n_boot,
        cfg["seed"],
        f"{rl} vs sft on {task} (Acc@1 beside)",
    )
    beside_text = (
        ""
        if beside is None
        else (
            f"; beside it, Acc@1 ({ACC1_LABEL[beside['definition']]}): {_pp(beside['before'])}% -> "
            f"{_pp(beside['after'])}% ({100 * beside['delta']:+.1f} pp, paired 95% CI "
            f"{_ci(beside['ci_low'], beside['ci_high'])})"
        )
    )

    rows = [
        {
            "claim": "1. the base model has little support; SFT expands it",
            "numbers": f"Pass@{k} on {task}: base {_pp(b_pk)}% (tau {_pp(tau)}%), after SFT {_pp(s_pk)}% "
            f"({100 * (s_pk - b_pk):+.1f} pp, paired 95% CI {_ci(lo, hi)})",
            "held": bool(support_held),
        },
        {
            "claim": "2. GRPO from SFT raises in-domain Acc@1 toward its Pass@K (sharpening)",
            "numbers": f"{label} on {task}: {_pp(acc.before)}% -> {_pp(acc.after)}% ({100 * acc.delta:+.1f} pp, paired "
            f"95% CI {_ci(acc.delta_ci_low, acc.delta_ci_high)}); gap Pass@{k} - {label}: "
            f"{100 * (passk.before - acc.before):.1f} -> {100 * (passk.after - acc.after):.1f} pp{beside_text}",
            "held": bool(sharpen_held),
        },
        {
            "claim": "3. GRPO from the base, where support is near zero, gains little",
            "numbers": f"{label} on {task}: {_pp(base_acc.before)}% -> {_pp(base_acc.after)}% "
            f"({100 * base_acc.delta:+.1f} pp, paired 95% CI "
            f"{_ci(base_acc.delta_ci_low, base_acc.delta_ci_high)})",
            "held": bool(little_held),
        },
    ]
    # the numbers each claim is decided on, for scripts (benchmarks/claims_seeds.py): what `numbers` says
    values = [
        (f"pass@{k}", b_pk, s_pk, lo, hi),
        ("acc1", acc.before, acc.after, acc.delta_ci_low, acc.delta_ci_high),
        ("acc1", base_acc.before, base_acc.after, base_acc.delta_ci_low, base_acc.delta_ci_high),
    ]
    for row, (metric, before, after, ci_lo, ci_hi) in zip(rows, values, strict=True):
        row.update(
            metric=metric,
            before=float(before),
            after=float(after),
            delta=float(after) - float(before),
            ci_low=ci_lo,
            ci_high=ci_hi,
        )
    rows[1]["acc1_definition"] = acc.get("acc1_definition")
    if beside is not None:
        rows[1].update({f"beside_{key}": v for key, v in beside.items()})
    # no run name: two runs of the same config write identical claims (and the README quotes the tiny run's)
    return pd.DataFrame(rows).assign(seed=cfg["seed"], task=task, n_items=int(acc.n_items))


def write_claims(
    cfg: dict, metric_paths: list[str | Path], fig2_csv: str | Path, csv_path: str | Path, md_path: str | Path
) -> pd.DataFrame:
    required_task(cfg)  # before reading any file
    table = claims_table(cfg, load_metrics(metric_paths), pd.read_csv(fig2_csv))
    shown = table.assign(held=table.held.map({True: "held", False: "NOT held"}))[["claim", "numbers", "held"]]
    notes = (
        f"Seed {cfg['seed']}, {int(table.n_items.iloc[0])} eval items of "
        f"{table.task.iloc[0]}; generated by `medbridge claims` from the run's metrics and Figure 2 "
        "(paired bootstrap CIs over the same items)."
    )
    write_table(table, csv_path)  # every column; the Markdown only what a reader needs
    md = "# What the run shows: the paper's claims about RL\n\n" + shown.to_markdown(index=False) + f"\n\n{notes}\n"
    write_text(md_path, md)
    return table
