"""Table 2: greedy Accuracy@1 of each model on the 12 MedMNIST tasks (as MCQ), with 95% CIs and the paper's value."""

from __future__ import annotations

import pandas as pd

from medbridge.artifacts.reference import reported_value
from medbridge.artifacts.tables import fmt_ci, write_table
from medbridge.data.medmnist import MODALITY
from medbridge.io import write_text

TITLE = "Table 2: Accuracy@1 (greedy) on MedMNIST as multiple choice, % [95% bootstrap CI]"


def table2_frame(metrics: list[dict]) -> pd.DataFrame:
    """Long form: one row per model x dataset, our value beside the reported one."""
    rows = [
        {"model": m["model"], "dataset": m["evalset"], "modality": MODALITY[m["evalset"]], "n_items": m["n_items"],
         "acc1": 100 * m["acc1"],
         "ci_low": None if m["acc1_ci"][0] is None else 100 * m["acc1_ci"][0],
         "ci_high": None if m["acc1_ci"][1] is None else 100 * m["acc1_ci"][1],
         "reported_acc1": reported_value("table2_accuracy_at_1", m["model"], m["evalset"])}
        for m in metrics
    ]  # fmt: skip
    return pd.DataFrame(rows)


def wide_markdown_frame(long: pd.DataFrame, datasets: list[str]) -> pd.DataFrame:
    """Readers' layout: per model a row of ours (with CI) and a row of the paper's reported value."""
    out = []
    for model, g in long.groupby("model", sort=False):
        g = g.set_index("dataset")
        ours = {d: fmt_ci(g.acc1[d] / 100, g.ci_low[d] / 100 if pd.notna(g.ci_low[d]) else None,
                          g.ci_high[d] / 100 if pd.notna(g.ci_high[d]) else None) if d in g.index else ""
                for d in datasets}  # fmt: skip
        ours["Avg"] = f"{g.acc1.mean():.2f}"
        out.append({"model": model, "values": "ours", **ours})
        rep = {d: "" if d not in g.index or pd.isna(g.reported_acc1[d]) else f"{g.reported_acc1[d]:.2f}" for d in datasets}
        rep_vals = g.reported_acc1.dropna()
        rep["Avg"] = f"{rep_vals.mean():.2f}" if len(rep_vals) == len(g) else ""
        out.append({"model": model, "values": "reported (paper)", **rep})
    return pd.DataFrame(out)


def write_table2(metrics: list[dict], datasets: list[str], csv_path: str, md_path: str) -> pd.DataFrame:
    long = table2_frame(metrics)
    notes = ("'ours' is computed by this run from generations/<model>/<dataset>.jsonl; 'reported (paper)' is copied "
             "from the paper for comparison only (reference/paper_tables.yaml).")  # fmt: skip
    write_table(long, csv_path)
    write_text(md_path, f"# {TITLE}\n\n{wide_markdown_frame(long, datasets).to_markdown(index=False)}\n\n{notes}\n")
    return long
