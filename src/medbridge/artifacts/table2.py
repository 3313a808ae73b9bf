"""Table 2: Accuracy@1 of each model on the 12 MedMNIST tasks (as MCQ), with 95% CIs and the paper's value.

`acc1` is the run's Acc@1 (evaluate.acc1: `sampled`, the mean accuracy of the n samples, which is what the paper's
Table 2 numbers are; or `greedy`); the other definition sits beside it (`acc1_greedy`, `acc1_sampled`), so a reader
sees both against the reported value.
"""

from __future__ import annotations

import pandas as pd

from medbridge.artifacts.reference import reported_value
from medbridge.artifacts.tables import fmt_ci, write_table
from medbridge.data.medmnist import MODALITY
from medbridge.io import write_text

LABEL = {"sampled": "mean of the samples", "greedy": "greedy"}


def title(definition: str) -> str:
    return f"Table 2: Accuracy@1 ({LABEL[definition]}) on MedMNIST as multiple choice, % [95% bootstrap CI]"


def _pct(x):
    return None if x is None else 100 * x


def table2_frame(metrics: list[dict]) -> pd.DataFrame:
    """Long form: one row per model x dataset, our values (both definitions) beside the reported one."""
    rows = []
    for m in metrics:
        greedy_ci = m.get("acc1_greedy_ci", m["acc1_ci"])
        sampled_ci = m.get("acc1_sampled_ci", [None, None])
        rows.append(
            {
                "model": m["model"],
                "dataset": m["evalset"],
                "modality": MODALITY[m["evalset"]],
                "n_items": m["n_items"],
                "n_samples": m.get("n_samples"),
                "acc1_definition": m.get("acc1_definition", "greedy"),
                "acc1": 100 * m["acc1"],
                "ci_low": _pct(m["acc1_ci"][0]),
                "ci_high": _pct(m["acc1_ci"][1]),
                "acc1_greedy": _pct(m.get("acc1_greedy", m["acc1"])),
                "acc1_greedy_ci_low": _pct(greedy_ci[0]),
                "acc1_greedy_ci_high": _pct(greedy_ci[1]),
                "acc1_sampled": _pct(m.get("acc1_sampled")),
                "acc1_sampled_ci_low": _pct(sampled_ci[0]),
                "acc1_sampled_ci_high": _pct(sampled_ci[1]),
                "reported_acc1": reported_value("table2_accuracy_at_1", m["model"], m["evalset"]),
            }
        )
    return pd.DataFrame(rows)


def _cells(g: pd.DataFrame, col: str, lo: str, hi: str, datasets: list[str]) -> dict:
    def one(d):
        if d not in g.index or pd.isna(g[col][d]):
            return ""
        bounds = [None if pd.isna(g[c][d]) else g[c][d] / 100 for c in (lo, hi)]
        return fmt_ci(g[col][d] / 100, *bounds)

    out = {d: one(d) for d in datasets}
    vals = g[col].dropna()
    out["Avg"] = f"{vals.mean():.2f}" if len(vals) == len(g) else ""
    return out


def wide_markdown_frame(long: pd.DataFrame, datasets: list[str]) -> pd.DataFrame:
    """Readers' layout: per model a row of ours (the run's Acc@1, with CI), a row of the other definition, and a row
    of the paper's reported value."""
    out = []
    for model, g in long.groupby("model", sort=False):
        g = g.set_index("dataset")
        definition = g.acc1_definition.iloc[0]
        out.append(
            {
                "model": model,
                "values": f"ours ({LABEL[definition]})",
                **_cells(g, "acc1", "ci_low", "ci_high", datasets),
            }
        )
        other = "greedy" if definition == "sampled" else "sampled"
        if g[f"acc1_{other}"].notna().any():
            out.append(
                {
                    "model": model,
                    "values": f"ours ({LABEL[other]})",
                    **_cells(g, f"acc1_{other}", f"acc1_{other}_ci_low", f"acc1_{other}_ci_high", datasets),
                }
            )
        rep = {
            d: "" if d not in g.index or pd.isna(g.reported_acc1[d]) else f"{g.reported_acc1[d]:.2f}" for d in datasets
        }
        rep_vals = g.reported_acc1.dropna()
        rep["Avg"] = f"{rep_vals.mean():.2f}" if len(rep_vals) == len(g) else ""
        out.append({"model": model, "values": "reported (paper)", **rep})
    return pd.DataFrame(out)


def write_table2(metrics: list[dict], datasets: list[str], csv_path: str, md_path: str) -> pd.DataFrame:
    long = table2_frame(metrics)
    definition = long.acc1_definition.iloc[0] if len(long) else "sampled"
    notes = (
        "'ours' is computed by this run from generations/<model>/<dataset>.jsonl: the run's Acc@1 "
        "(evaluate.acc1) first, the other definition below it; 'mean of the samples' is each item's share of "
        "correct samples, averaged (the unbiased Pass@1), the quantity the paper's Table 2 numbers fit "
        "(docs/FIDELITY.md, row greedy-acc1). 'reported (paper)' is copied from the paper for comparison only "
        "(reference/paper_tables.yaml)."
    )
    write_table(long, csv_path)
    write_text(
        md_path, f"# {title(definition)}\n\n{wide_markdown_frame(long, datasets).to_markdown(index=False)}\n\n{notes}\n"
    )
    return long
