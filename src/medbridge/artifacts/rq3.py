"""Figure 2 (RQ3): when does RL help? Acc@1 and Pass@K before and after GRPO, per init model and transfer regime.

For every regime (in-domain, within-modality, cross-modality) and (train task -> eval task) pair of `rq3.pairs`, and
every init model of `rq3.inits`: `before` is the init model's metric on the eval task, `after` the metric of
`rq3-<init>-<train task>` (GRPO from that init on the train task) on the same eval task, `delta = after - before`.
Metrics: Acc@1 and Pass@K with K = max(evaluate.k). Fractions in the CSV; the heatmap shows percentage points.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medbridge import MedbridgeError
from medbridge.artifacts.tables import write_table
from medbridge.io import atomic_path, read_json

REGIME_ORDER = ["in_domain", "within_modality", "cross_modality"]


def rq3_model(init: str, task: str) -> str:
    """Name of the model GRPO makes from `init` on `task` (models/<name>/ and metrics/<name>/)."""
    return f"rq3-{init}-{task}"


def check_rq3_config(cfg: dict) -> None:
    """Every pair's train task must be one the grid trains on, every init a model role."""
    rq3 = cfg.get("rq3", {})
    tasks = set(rq3.get("train_tasks", []))
    for init in rq3.get("inits", []):
        if init not in cfg["models"]:
            raise MedbridgeError(f"rq3.inits names {init!r}, not a model role; defined roles: {sorted(cfg['models'])}")
    for regime, pairs in rq3.get("pairs", {}).items():
        for train, _ in pairs:
            if train not in tasks:
                raise MedbridgeError(
                    f"rq3.pairs.{regime} trains on {train!r}, which is not in rq3.train_tasks {sorted(tasks)}; "
                    "add it there (so its RL models are made) or drop the pair"
                )


def rq3_inputs(cfg: dict) -> list[tuple[str, str]]:
    """(model, evalset) pairs whose metrics the grid reads, in a stable order without repeats."""
    rq3 = cfg.get("rq3", {})
    need = []
    for pairs in rq3.get("pairs", {}).values():
        for train, ev in pairs:
            for init in rq3.get("inits", []):
                for key in ((init, ev), (rq3_model(init, train), ev)):
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
        out[(m["model"], m["evalset"])] = m
    return out


def _value(m: dict, metric: str, k: int, where: tuple[str, str]) -> float:
    if metric == "acc1":
        return float(m["acc1"])
    if str(k) not in m["pass_at_k"]:
        raise MedbridgeError(
            f"metrics of {where[0]} on {where[1]} have no Pass@{k} (has k = {sorted(m['pass_at_k'], key=int)}); "
            "rescore with evaluate.k including it"
        )
    return float(m["pass_at_k"][str(k)])


def rq3_table(cfg: dict, metrics: dict[tuple[str, str], dict]) -> pd.DataFrame:
    """One row per regime x init x (train -> eval) pair x metric: before, after, delta."""
    rq3 = cfg.get("rq3", {})
    k = max(cfg["evaluate"]["k"])
    rows = []
    for regime, pairs in rq3.get("pairs", {}).items():
        for train, ev in pairs:
            for init in rq3.get("inits", []):
                keys = {"before": (init, ev), "after": (rq3_model(init, train), ev)}
                for key in keys.values():
                    if key not in metrics:
                        raise MedbridgeError(
                            f"no metrics for model {key[0]} on {key[1]}; pass its metrics/{key[0]}/{key[1]}.json "
                            "(snakemake makes it)"
                        )
                for metric in ("acc1", f"pass@{k}"):
                    before, after = (_value(metrics[keys[s]], metric, k, keys[s]) for s in ("before", "after"))
                    rows.append({"regime": regime, "init": init, "train_task": train, "eval_task": ev,
                                 "metric": metric, "before": before, "after": after,
                                 "delta": after - before})  # fmt: skip
    if not rows:
        raise MedbridgeError("rq3.pairs and rq3.inits define no cell of the grid; fill them in the config")
    return pd.DataFrame(rows)


def plot_rq3(table: pd.DataFrame, png_path: str | Path) -> None:
    """Heatmaps of delta (percentage points): rows = metric, panels = regime; y = init model, x = train -> eval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    df = table.assign(pair=table.train_task + "\n-> " + table.eval_task, delta_pp=100 * table.delta)
    regimes = [r for r in REGIME_ORDER if r in set(df.regime)] + sorted(set(df.regime) - set(REGIME_ORDER))
    metrics = list(dict.fromkeys(df.metric))
    inits = list(dict.fromkeys(df.init))
    widths = [df[df.regime == r].pair.nunique() for r in regimes]
    vmax = max(1.0, float(df.delta_pp.abs().max()))
    size = (2.0 * sum(widths) + 1.5, 1.8 + 1.1 * len(inits) * len(metrics))
    fig, axes = plt.subplots(len(metrics), len(regimes), squeeze=False, gridspec_kw={"width_ratios": widths},
                             figsize=size)  # fmt: skip
    for i, metric in enumerate(metrics):
        for j, regime in enumerate(regimes):
            sub = df[(df.metric == metric) & (df.regime == regime)]
            grid = sub.pivot(index="init", columns="pair", values="delta_pp")
            grid = grid.reindex(index=inits, columns=list(dict.fromkeys(sub.pair)))
            ax = axes[i][j]
            sns.heatmap(grid, ax=ax, annot=True, fmt="+.1f", cmap="RdBu", center=0, vmin=-vmax, vmax=vmax,
                        cbar=j == len(regimes) - 1, cbar_kws={"label": "after RL - before (pp)"},
                        linewidths=0.5)  # fmt: skip
            label = "Acc@1" if metric == "acc1" else metric.replace("pass", "Pass")
            ax.set_title(f"{regime.replace('_', '-')}: {label}" if i == 0 else label, fontsize=9)
            ax.set_xlabel("RL train task -> eval task" if i == len(metrics) - 1 else "")
            ax.set_ylabel("init model" if j == 0 else "")
            ax.tick_params(axis="x", labelsize=7, rotation=0)
            ax.tick_params(axis="y", rotation=0)
            if i < len(metrics) - 1:
                ax.set_xticklabels([])
    fig.suptitle("Figure 2 (RQ3): change after GRPO, by transfer regime", y=0.995)
    fig.tight_layout()
    with atomic_path(png_path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, format="png", metadata={"Software": None})
    plt.close(fig)


def write_rq3(cfg: dict, metric_paths: list[str | Path], csv_path: str | Path, png_path: str | Path) -> pd.DataFrame:
    check_rq3_config(cfg)
    table = rq3_table(cfg, load_metrics(metric_paths))
    write_table(table, csv_path)
    plot_rq3(table, png_path)
    return table
