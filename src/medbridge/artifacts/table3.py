"""Table 3: greedy Accuracy@1 of every configured model on the six medical VQA benchmarks (as MCQ), plus the average,
with 95% CIs, beside the paper's reported values (labelled as such).

A role's reported row is found by its HF id (the paper's Table 3 rows are HF ids); a role with no hub id of its own
takes the id the paper used for that role (reference `models:`, e.g. the tiny `base` stands for
Qwen2.5-VL-7B-Instruct); `vqa.reported_rows` names the row of roles whose id is no row there (the DAG-made `ours`).
"""

from __future__ import annotations

import pandas as pd

from medbridge import MedbridgeError
from medbridge.artifacts.reference import reported, reported_value
from medbridge.artifacts.tables import fmt_ci, write_table
from medbridge.io import write_text

TITLE = "Table 3: Accuracy@1 (greedy) on six medical VQA benchmarks as multiple choice, % [95% bootstrap CI]"
TABLE = "table3_vqa_accuracy"


def reported_row(cfg: dict, role: str) -> str | None:
    """The paper's Table 3 row a model role is compared with, or None."""
    rows = reported().get(TABLE, {}).get("rows", {})
    explicit = cfg["vqa"]["reported_rows"] if "vqa" in cfg else {}
    if role in explicit:
        if explicit[role] not in rows:
            raise MedbridgeError(
                f"vqa.reported_rows.{role} = {explicit[role]!r} is not a row of the paper's Table 3; rows: {list(rows)}"
            )
        return explicit[role]
    spec = cfg["models"].get(role, {})
    hf_id = spec.get("id") if spec.get("source") == "hub" else reported().get("models", {}).get(role)
    return hf_id if hf_id in rows else None


def table3_frame(cfg: dict, metrics: list[dict]) -> pd.DataFrame:
    """Long form: one row per model x benchmark, ours beside the reported value."""
    out = []
    for m in metrics:
        row = reported_row(cfg, m["model"])
        lo, hi = m.get("acc1_ci") or (None, None)
        out.append(
            {
                "model": m["model"],
                "reported_as": row,
                "benchmark": m["evalset"],
                "n_items": m["n_items"],
                "acc1": 100 * m["acc1"],
                "ci_low": None if lo is None else 100 * lo,
                "ci_high": None if hi is None else 100 * hi,
                "reported_acc1": None if row is None else reported_value(TABLE, row, m["evalset"]),
            }
        )
    return pd.DataFrame(out)


def wide_markdown_frame(long: pd.DataFrame, benchmarks: list[str]) -> pd.DataFrame:
    """Readers' layout: per model a row of ours (with CI) and a row of the reported values; Avg = mean of six."""
    rows = []
    for model, g in long.groupby("model", sort=False):
        g = g.set_index("benchmark")
        ours = {
            b: fmt_ci(g.acc1[b] / 100, *(None if pd.isna(g[c][b]) else g[c][b] / 100 for c in ("ci_low", "ci_high")))
            for b in benchmarks
        }
        ours["Avg"] = f"{g.acc1[benchmarks].mean():.2f}"
        rows.append({"model": model, "values": "ours", **ours})
        rep = g.reported_acc1[benchmarks]
        rep_cells = {b: "" if pd.isna(rep[b]) else f"{rep[b]:.2f}" for b in benchmarks}
        name = g.reported_as.iloc[0]
        rep_avg = reported_value(TABLE, name, "avg") if name else None  # the paper's own average, as printed
        rep_cells["Avg"] = "" if rep_avg is None else f"{rep_avg:.2f}"
        rows.append(
            {"model": model, "values": f"reported (paper: {name})" if name else "reported (paper): none", **rep_cells}
        )
    return pd.DataFrame(rows)


def write_table3(cfg: dict, metrics: list[dict], csv_path: str, md_path: str) -> pd.DataFrame:
    benchmarks = [b["name"] for b in cfg["vqa"]["benchmarks"]]
    models = cfg["vqa"].get("models", [])
    have = {(m["model"], m["evalset"]) for m in metrics}
    missing = [(r, b) for r in models for b in benchmarks if (r, b) not in have]
    if missing:
        raise MedbridgeError(
            f"Table 3 lacks metrics for {missing[:6]}{' ...' if len(missing) > 6 else ''}; pass "
            "metrics/<model>/<benchmark>.json for every vqa.models x vqa.benchmarks"
        )
    order = {(r, b): i for i, (r, b) in enumerate((r, b) for r in models for b in benchmarks)}
    metrics = sorted(
        (m for m in metrics if (m["model"], m["evalset"]) in order), key=lambda m: order[(m["model"], m["evalset"])]
    )
    long = table3_frame(cfg, metrics)
    avg = (
        long.groupby("model", sort=False)
        .agg(acc1=("acc1", "mean"), reported_as=("reported_as", "first"), n_items=("n_items", "sum"))
        .reset_index()
        .assign(benchmark="avg")
    )
    avg["reported_acc1"] = [reported_value(TABLE, r, "avg") if r else None for r in avg.reported_as]
    long = pd.concat([long, avg[long.columns.intersection(avg.columns)]], ignore_index=True)
    write_table(long, csv_path)
    notes = (
        "'ours' is computed by this run from generations/<model>/<benchmark>.jsonl (greedy decoding); "
        "'reported (paper)' is copied from the paper for comparison only (reference/paper_tables.yaml), matched "
        "by the model's HF id. Avg is the unweighted mean over the six benchmarks "
        "(the reported Avg is the paper's own). "
        "Item counts per benchmark are in the CSV (n_items); rows skipped while adapting each benchmark are "
        "listed in vqa/<benchmark>/skipped.json."
    )
    wide = wide_markdown_frame(long[long.benchmark != "avg"], benchmarks)
    write_text(md_path, f"# {TITLE}\n\n{wide.to_markdown(index=False, disable_numparse=True)}\n\n{notes}\n")
    return long
