"""Figure 1: Pass@K curves by modality (one panel per modality, one line per model), plotted with seaborn.

A modality's curve is the mean over its datasets of each dataset's unbiased Pass@K; fig1_passk.csv holds exactly
the plotted points, with the number of datasets averaged.
"""

from __future__ import annotations

import pandas as pd

from medbridge.artifacts.tables import write_table
from medbridge.data.medmnist import MODALITY
from medbridge.io import atomic_path

MODALITY_ORDER = ["radiology", "microscopy", "visible_light_photography"]


def fig1_frame(metrics: list[dict]) -> pd.DataFrame:
    rows = [
        {
            "model": m["model"],
            "dataset": m["evalset"],
            "modality": MODALITY[m["evalset"]],
            "k": int(k),
            "pass_at_k": 100 * v,
        }
        for m in metrics
        for k, v in m["pass_at_k"].items()
    ]
    df = pd.DataFrame(rows)
    return (
        df.groupby(["model", "modality", "k"], sort=False)
        .agg(pass_at_k=("pass_at_k", "mean"), n_datasets=("dataset", "nunique"))
        .reset_index()
    )


def plot_fig1(curves: pd.DataFrame, png_path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    present = [m for m in MODALITY_ORDER if m in set(curves.modality)]
    grid = sns.relplot(
        data=curves,
        x="k",
        y="pass_at_k",
        hue="model",
        col="modality",
        col_order=present,
        kind="line",
        marker="o",
        height=3.2,
        aspect=1.1,
        facet_kws={"sharey": True},
    )
    grid.set(xscale="log", xticks=sorted(curves.k.unique()))
    for ax in grid.axes.flat:
        ax.minorticks_off()  # only the K values as ticks (no 3x10^0 labels)
        ax.set_xticklabels([str(k) for k in sorted(curves.k.unique())])
    grid.set_axis_labels("K (samples)", "Pass@K (%)")
    grid.set_titles("{col_name}")
    grid.figure.suptitle("Figure 1: Pass@K by modality", y=1.03)
    with atomic_path(png_path, suffix=".png") as tmp:
        grid.savefig(tmp, dpi=120, bbox_inches="tight", format="png", metadata={"Software": None})


def write_fig1(metrics: list[dict], csv_path: str, png_path: str) -> pd.DataFrame:
    curves = fig1_frame(metrics)
    write_table(curves, csv_path)
    plot_fig1(curves, png_path)
    return curves
