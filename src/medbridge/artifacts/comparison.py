"""The paper comparison: every reproduced number that the paper also reports, beside the reported value, the
delta, and whether the reported value lies in our 95% CI (bootstrap CI for metrics; Wilson interval for probe
accuracies, which have no resamples). Reported values are the reference column only; ours are computed.
Column `ledger` names the rows of the fidelity ledger (docs/FIDELITY.md, medbridge.fidelity) that touch the number;
`ledger_deviations` those of them where this run's config departs from the authors' value."""

from __future__ import annotations

import math

import pandas as pd

from medbridge.artifacts.reference import reported_value
from medbridge.artifacts.tables import write_table
from medbridge.fidelity import deviations, rows_for, trained_by
from medbridge.io import read_json

TITLE = "Reproduced vs reported (percent)"


def wilson(p: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _row(table: str, model: str, column: str, ours: float, lo, hi, reported: float | None) -> dict:
    inside = None if reported is None or lo is None else bool(100 * lo <= reported <= 100 * hi)
    return {"table": table, "model": model, "column": column, "ours": 100 * ours,
            "ci_low": None if lo is None else 100 * lo, "ci_high": None if hi is None else 100 * hi,
            "reported": reported, "delta": None if reported is None else 100 * ours - reported,
            "reported_in_ci": inside}  # fmt: skip


PARTS = {"Table 1 (linear probe)": "T1", "Table 2 (Acc@1)": "T2", "Table 3 (VQA accuracy)": "T3"}


def _ledger(row: dict, cfg: dict, departed: set[str]) -> dict:
    ids = [r.id for r in rows_for(PARTS[row["table"]], row["column"], trained_by(cfg, row["model"]))]
    return {**row, "ledger": ";".join(ids), "ledger_deviations": ";".join(i for i in ids if i in departed)}


def comparison_frame(probes: list[dict], metrics: list[dict], vqa_rows: dict[str, str],
                     cfg: dict | None = None) -> pd.DataFrame:  # fmt: skip
    """`vqa_rows` maps a model name to its row in the paper's Table 3 (keyed there by HF id); `cfg` the run's
    config, for the ledger columns."""
    rows = []
    for p in probes:
        lo, hi = wilson(p["accuracy"], p["n"])
        rows.append(_row("Table 1 (linear probe)", p["model"], p["dataset"], p["accuracy"], lo, hi,
                         reported_value("table1_linear_probe_accuracy", p["model"], p["dataset"])))  # fmt: skip
    for m in metrics:
        lo, hi = m["acc1_ci"]
        rep = reported_value("table2_accuracy_at_1", m["model"], m["evalset"])
        table = "Table 2 (Acc@1)"
        if rep is None and m["model"] in vqa_rows:
            rep = reported_value("table3_vqa_accuracy", vqa_rows[m["model"]], m["evalset"])
            table = "Table 3 (VQA accuracy)"
        if rep is not None:
            rows.append(_row(table, m["model"], m["evalset"], m["acc1"], lo, hi, rep))
    cfg = cfg or {}
    departed = set(deviations(cfg))
    return pd.DataFrame([_ledger(r, cfg, departed) for r in rows])


def write_comparison(probe_paths, metrics_paths, vqa_rows: dict[str, str], csv_path: str, md_path: str,
                     cfg: dict | None = None) -> pd.DataFrame:  # fmt: skip
    df = comparison_frame([read_json(p) for p in probe_paths], [read_json(p) for p in metrics_paths], vqa_rows, cfg)
    n_in = int(df.reported_in_ci.fillna(False).sum()) if len(df) else 0
    notes = (f"{len(df)} numbers compared; the reported value lies inside our 95% CI for {n_in}. `ours` is computed "
             "by this run; `reported` is copied from the paper (reference/paper_tables.yaml) for comparison only. "
             "In the tiny profile (a tiny random-init model on synthetic data) no agreement is expected. `ledger`: the "
             "docs/FIDELITY.md rows touching each number; `ledger_deviations`: those where this run's config departs "
             "from the authors' value.")  # fmt: skip
    write_table(df, csv_path, md_path, title=TITLE, notes=notes)
    return df
