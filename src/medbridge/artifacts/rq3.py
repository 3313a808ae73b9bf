"""Figure 2 (RQ3): when does RL help? Acc@1 and Pass@K before and after GRPO, per init model and transfer regime.

For every regime (in-domain, within-modality, cross-modality) and (train task -> eval task) pair of `rq3.pairs`, and
every init model of `rq3.inits`: `before` is the init model's metric on the eval task, `after` the metric of
`rq3-<init>-<train task>` (GRPO from that init on the train task; a config role that is the same training stands in
for it) on the same eval task, `delta = after - before`.
Metrics: Acc@1 (as the run reports it, evaluate.acc1: the samples' mean accuracy by default, as the paper's
Table 2; column `acc1_definition`) and Pass@K with K = max(evaluate.k). Fractions in the CSV; the heatmap shows
percentage points.

Uncertainty: before and after answer the same items, so each delta carries a paired percentile bootstrap 95% CI
(items resampled, the mean of the per-item differences; `evaluate.bootstrap` resamples, seeded from the config):
`delta_ci_low`, `delta_ci_high`, and `ci_includes_zero` (the change is not distinguishable from no change at 95%);
the heatmap hatches those cells.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medbridge import MedbridgeError
from medbridge.artifacts.tables import write_table
from medbridge.io import atomic_path, read_json
from medbridge.score.stats import bootstrap_ci

REGIME_ORDER = ["in_domain", "within_modality", "cross_modality"]
ACC1_LABEL = {"sampled": "mean of samples", "greedy": "greedy"}


def rq3_model(cfg: dict, init: str, task: str) -> str:
    """Name of the model GRPO makes from `init` on `task` (models/<name>/ and metrics/<name>/): `rq3-<init>-<task>`,
    or a config role that is the same training ({source: grpo, init, task}, e.g. the tiny profile's `rl`), so the
    DAG trains and evaluates it once."""
    spec = {"source": "grpo", "init": init, "task": task}
    return next((role for role, s in cfg["models"].items() if s == spec), f"rq3-{init}-{task}")


def rq3_models(cfg: dict) -> dict[str, dict]:
    """name -> {source, init, task} of every model the grid trains (rq3.inits x rq3.train_tasks)."""
    rq3 = cfg["rq3"]
    return {
        rq3_model(cfg, i, t): {"source": "grpo", "init": i, "task": t} for i in rq3["inits"] for t in rq3["train_tasks"]
    }


def model_spec(cfg: dict, name: str) -> dict | None:
    """The spec of a model by name: its config role, or the {source: grpo, init, task} record of a model the RQ3
    grid trains; None for neither. The one place a DAG-made name is understood (never parsed from its text)."""
    return cfg["models"].get(name) or rq3_models(cfg).get(name)


def check_rq3_config(cfg: dict) -> None:
    """Every pair's train task must be one the grid trains on, its target a MedMNIST dataset of the run (else the DAG
    would read it as a Table 3 benchmark), every init a model role."""
    from medbridge.evalsets import dataset_split

    rq3 = cfg["rq3"]
    tasks = set(rq3["train_tasks"])
    for init in rq3["inits"]:
        if init not in cfg["models"]:
            raise MedbridgeError(f"rq3.inits names {init!r}, not a model role; defined roles: {sorted(cfg['models'])}")
    for regime, pairs in rq3["pairs"].items():
        for train, target in pairs:
            if train not in tasks:
                raise MedbridgeError(
                    f"rq3.pairs.{regime} trains on {train!r}, which is not in rq3.train_tasks {sorted(tasks)}; "
                    "add it there (so its RL models are made) or drop the pair"
                )
            if dataset_split(target, cfg) is None:
                raise MedbridgeError(
                    f"rq3.pairs.{regime} evaluates on {target!r}, which is not in data.datasets "
                    f"{cfg['data']['datasets']}; add it there or drop the pair"
                )


def rq3_inputs(cfg: dict) -> list[tuple[str, str]]:
    """(model, evalset) pairs whose metrics the grid reads, in a stable order without repeats."""
    rq3 = cfg["rq3"]
    need = []
    for pairs in rq3["pairs"].values():
        for train, ev in pairs:
            for init in rq3["inits"]:
                for key in ((init, ev), (rq3_model(cfg, init, train), ev)):
                    if key not in need:
                        need.append(key)
    return need


def load_metrics(paths: list[str | Path]) -> dict[tuple[str, str], dict]:
    """metrics JSON files keyed by (model, evalset), as written by `medbridge score`."""
    out = {}
    for p in paths:
        m = read_json(p)
        missing = {"model", "evalset", "acc1", "pass_at_k"} - set(m)
        if missing:
            raise MedbridgeError(f"{p} lacks {sorted(missing)}; it is not a metrics file of `medbridge score`")
        if "per_item" not in m:
            raise MedbridgeError(
                f"{p} has no per-item values (written by an older `medbridge score`); rescore it "
                "(delete it and rerun snakemake) so the RQ3 deltas get paired intervals"
            )
        out[(m["model"], m["evalset"])] = m
    return out


def _values(m: dict, metric: str, k: int, where: tuple[str, str]) -> tuple[float, dict[str, float]]:
    """(the metric, {item id: the item's value}) of one metrics file."""
    items = m["per_item"]
    if metric == "acc1":
        return float(m["acc1"]), dict(zip(items["id"], items["acc1"], strict=True))
    if str(k) not in m["pass_at_k"]:
        raise MedbridgeError(
            f"metrics of {where[0]} on {where[1]} have no Pass@{k} (has k = {sorted(m['pass_at_k'], key=int)}); "
            "rescore with evaluate.k including it"
        )
    return float(m["pass_at_k"][str(k)]), dict(zip(items["id"], items["pass_at_k"][str(k)], strict=True))


def paired_delta_ci(
    before: dict[str, float], after: dict[str, float], n_boot: int, seed: int, where: str
) -> tuple[float | None, float | None]:
    """95% percentile-bootstrap CI of mean(after - before) over the same items (resampled in pairs)."""
    if set(before) != set(after):
        raise MedbridgeError(
            f"{where}: before and after were scored on different items ({len(set(before) ^ set(after))} ids differ); "
            "regenerate both on the same eval set"
        )
    ids = sorted(before)
    return bootstrap_ci(np.array([after[i] - before[i] for i in ids]), n_boot, seed)


def rq3_table(cfg: dict, metrics: dict[tuple[str, str], dict]) -> pd.DataFrame:
    """One row per regime x init x (train -> eval) pair x metric: before, after, delta."""
    rq3 = cfg["rq3"]
    k = max(cfg["evaluate"]["k"])
    n_boot = cfg["evaluate"]["bootstrap"]
    rows = []
    for regime, pairs in rq3["pairs"].items():
        for train, ev in pairs:
            for init in rq3["inits"]:
                keys = {"before": (init, ev), "after": (rq3_model(cfg, init, train), ev)}
                for key in keys.values():
                    if key not in metrics:
                        raise MedbridgeError(
                            f"no metrics for model {key[0]} on {key[1]}; pass its metrics/{key[0]}/{key[1]}.json "
                            "(snakemake makes it)"
                        )
                for metric in ("acc1", f"pass@{k}"):
                    (before, b_items), (after, a_items) = (
                        _values(metrics[keys[s]], metric, k, keys[s]) for s in ("before", "after")
                    )
                    where = f"{keys['after'][0]} vs {init} on {ev} ({metric})"
                    lo, hi = paired_delta_ci(b_items, a_items, n_boot, cfg["seed"], where)
                    definition = metrics[keys["after"]].get("acc1_definition", "greedy") if metric == "acc1" else None
                    rows.append(
                        {
                            "regime": regime,
                            "init": init,
                            "train_task": train,
                            "eval_task": ev,
                            "metric": metric,
                            "acc1_definition": definition,
                            "n_items": len(a_items),
                            "before": before,
                            "after": after,
                            "delta": after - before,
                            "delta_ci_low": lo,
                            "delta_ci_high": hi,
                            "ci_includes_zero": None if lo is None else bool(lo <= 0 <= hi),
                        }
                    )
    if not rows:
        raise MedbridgeError("rq3.pairs and rq3.inits define no cell of the grid; fill them in the config")
    return pd.DataFrame(rows)


def _cell_text(row) -> str:
    """'+21.2' over its CI '[+6.1, +36.4]' (percentage points)."""
    if row.delta_ci_low is None or pd.isna(row.delta_ci_low):
        return f"{100 * row.delta:+.1f}"
    return f"{100 * row.delta:+.1f}\n[{100 * row.delta_ci_low:+.1f}, {100 * row.delta_ci_high:+.1f}]"


def plot_rq3(table: pd.DataFrame, png_path: str | Path) -> None:
    """Heatmaps of delta (percentage points) with their paired 95% CIs: rows = metric, panels = regime; y = init
    model, x = train -> eval. Cells whose CI includes zero are hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.patches import Rectangle

    df = table.assign(pair=table.train_task + "\n-> " + table.eval_task, delta_pp=100 * table.delta)
    df["text"] = [_cell_text(r) for r in df.itertuples()]
    regimes = [r for r in REGIME_ORDER if r in set(df.regime)] + sorted(set(df.regime) - set(REGIME_ORDER))
    metrics = list(dict.fromkeys(df.metric))
    inits = list(dict.fromkeys(df.init))
    widths = [df[df.regime == r].pair.nunique() for r in regimes]
    vmax = max(1.0, float(df.delta_pp.abs().max()))
    size = (2.4 * sum(widths) + 1.5, 2.0 + 1.2 * len(inits) * len(metrics))
    fig, axes = plt.subplots(
        len(metrics), len(regimes), squeeze=False, gridspec_kw={"width_ratios": widths}, figsize=size
    )
    for i, metric in enumerate(metrics):
        for j, regime in enumerate(regimes):
            sub = df[(df.metric == metric) & (df.regime == regime)]
            cols, rows = list(dict.fromkeys(sub.pair)), inits
            grid = sub.pivot(index="init", columns="pair", values="delta_pp").reindex(index=rows, columns=cols)
            text = sub.pivot(index="init", columns="pair", values="text").reindex(index=rows, columns=cols)
            ax = axes[i][j]
            sns.heatmap(
                grid,
                ax=ax,
                annot=text.fillna("").to_numpy(),
                fmt="",
                cmap="RdBu",
                center=0,
                vmin=-vmax,
                vmax=vmax,
                cbar=j == len(regimes) - 1,
                cbar_kws={"label": "after RL - before (pp)"},
                linewidths=0.5,
                annot_kws={"fontsize": 7},
            )
            for r in sub.itertuples():
                if r.ci_includes_zero is True:  # not distinguishable from no change at 95%
                    ax.add_patch(
                        Rectangle(
                            (cols.index(r.pair), rows.index(r.init)),
                            1,
                            1,
                            fill=False,
                            hatch="///",
                            edgecolor="0.55",
                            linewidth=0,
                        )
                    )
            defs = set(sub.acc1_definition.dropna()) if metric == "acc1" else set()
            label = (
                (f"Acc@1 ({ACC1_LABEL.get(next(iter(defs)), '?')})" if len(defs) == 1 else "Acc@1")
                if metric == "acc1"
                else metric.replace("pass", "Pass")
            )
            ax.set_title(f"{regime.replace('_', '-')}: {label}" if i == 0 else label, fontsize=9)
            ax.set_xlabel("RL train task -> eval task" if i == len(metrics) - 1 else "")
            ax.set_ylabel("init model" if j == 0 else "")
            ax.tick_params(axis="x", labelsize=7, rotation=0)
            ax.tick_params(axis="y", rotation=0)
            if i < len(metrics) - 1:
                ax.set_xticklabels([])
    fig.suptitle(
        "Figure 2 (RQ3): change after GRPO, by transfer regime\n(pp, paired 95% CI; hatched: CI includes 0)",
        y=0.995,
        fontsize=9,
    )
    fig.tight_layout()
    with atomic_path(png_path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, format="png", metadata={"Software": None})
    plt.close(fig)


def write_rq3(cfg: dict, metric_paths: list[str | Path], csv_path: str | Path, png_path: str | Path) -> pd.DataFrame:
    table = rq3_table(cfg, load_metrics(metric_paths))
    write_table(table, csv_path)
    plot_rq3(table, png_path)
    return table
