"""The paper comparison: every reproduced number that the paper also reports, beside the reported value, the
delta, whether the reported value lies in our 95% CI (bootstrap CI for metrics; Wilson interval for probe
accuracies, which have no resamples), and the noise of both numbers (`paper_se` at the paper's N, `noise_95` of the
difference, `within_noise`), so a reader can tell a miss from sampling noise. Reported values are the reference
column only; ours are computed.
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


Z95 = 1.959964
PARTS = {"Table 1 (linear probe)": "T1", "Table 2 (Acc@1)": "T2", "Table 3 (VQA accuracy)": "T3"}


def noise(reported: float | None, paper_n: int | None, ours: float, lo, hi, n: int) -> dict:
    """The noise beside one comparison, in points: `paper_se`, the binomial standard error of the reported value at
    the paper's N (its own sampling noise: about 3.4 points for a Table 3 cell near 65 % over 200 items; an upper
    bound for Table 2's means over 16 samples per item); `ours_se`, ours from its 95% CI (binomial at our N without
    one); `noise_95`, 1.96 x the standard error of the difference of the two; `within_noise`, |delta| <= noise_95
    (a miss inside it is not told apart from sampling noise; outside it, it is)."""
    out = {"paper_se": None, "ours_se": None, "noise_95": None, "within_noise": None}
    if reported is None:
        return out
    q = reported / 100
    paper_se = 100 * math.sqrt(q * (1 - q) / paper_n) if paper_n else None
    if lo is not None and hi is not None:
        ours_se = 100 * (hi - lo) / (2 * Z95)
    else:
        ours_se = 100 * math.sqrt(ours * (1 - ours) / n) if n else None
    out |= {"paper_se": paper_se, "ours_se": ours_se}
    if paper_se is not None and ours_se is not None:
        out["noise_95"] = Z95 * math.sqrt(paper_se**2 + ours_se**2)
        out["within_noise"] = bool(abs(100 * ours - reported) <= out["noise_95"])
    return out


def _row(
    table: str,
    model: str,
    column: str,
    ours: float,
    lo,
    hi,
    reported: float | None,
    n: int,
    definition: str | None = None,
) -> dict:
    from medbridge.artifacts.reference import paper_items

    inside = None if reported is None or lo is None else bool(100 * lo <= reported <= 100 * hi)
    paper_n = paper_items(PARTS[table], column)
    return {
        "table": table,
        "model": model,
        "column": column,
        "acc1_definition": definition,
        "n": n,
        "ours": 100 * ours,
        "ci_low": None if lo is None else 100 * lo,
        "ci_high": None if hi is None else 100 * hi,
        "reported": reported,
        "delta": None if reported is None else 100 * ours - reported,
        "reported_in_ci": inside,
        "paper_n": paper_n,
        **noise(reported, paper_n, ours, lo, hi, n),
    }


def _ledger(row: dict, cfg: dict, departed: set[str]) -> dict:
    ids = [r.id for r in rows_for(PARTS[row["table"]], row["column"], trained_by(cfg, row["model"]))]
    return {**row, "ledger": ";".join(ids), "ledger_deviations": ";".join(i for i in ids if i in departed)}


def comparison_frame(
    probes: list[dict], metrics: list[dict], vqa_rows: dict[str, str], cfg: dict | None = None
) -> pd.DataFrame:
    """`vqa_rows` maps a model name to its row in the paper's Table 3 (keyed there by HF id); `cfg` the run's
    config, for the ledger columns."""
    rows = []
    for p in probes:
        lo, hi = wilson(p["accuracy"], p["n"])
        rows.append(
            _row(
                "Table 1 (linear probe)",
                p["model"],
                p["dataset"],
                p["accuracy"],
                lo,
                hi,
                reported_value("table1_linear_probe_accuracy", p["model"], p["dataset"]),
                p["n"],
            )
        )
    for m in metrics:
        lo, hi = m["acc1_ci"]
        rep = reported_value("table2_accuracy_at_1", m["model"], m["evalset"])
        table = "Table 2 (Acc@1)"
        if rep is None and m["model"] in vqa_rows:
            rep = reported_value("table3_vqa_accuracy", vqa_rows[m["model"]], m["evalset"])
            table = "Table 3 (VQA accuracy)"
        if rep is not None:
            definition = m.get("acc1_definition", "greedy") if table.startswith("Table 2") else "greedy"
            rows.append(_row(table, m["model"], m["evalset"], m["acc1"], lo, hi, rep, m.get("n_items", 0), definition))
    cfg = cfg or {}
    departed = set(deviations(cfg))
    return pd.DataFrame([_ledger(r, cfg, departed) for r in rows])


def write_comparison(
    probe_paths, metrics_paths, vqa_rows: dict[str, str], csv_path: str, md_path: str, cfg: dict | None = None
) -> pd.DataFrame:
    df = comparison_frame([read_json(p) for p in probe_paths], [read_json(p) for p in metrics_paths], vqa_rows, cfg)
    n_in = int(df.reported_in_ci.fillna(False).sum()) if len(df) else 0
    n_noise = int(df.within_noise.fillna(False).sum()) if len(df) else 0
    notes = (
        f"{len(df)} numbers compared; the reported value lies inside our 95% CI for {n_in}, and the difference "
        f"is within the two runs' joint sampling noise for {n_noise}. `ours` is computed "
        "by this run; `reported` is copied from the paper (reference/paper_tables.yaml) for comparison only. "
        "Noise (points): `paper_se` is the reported value's binomial standard error at the paper's N (`paper_n`: "
        "Table 1 and 2 cells are over classes x the smallest test class, where the paper's arithmetic gives it, "
        "Table 3's over 200 items, MMMU's 170; an upper bound for Table 2's means over 16 samples per item), "
        "`ours_se` ours from its CI, `noise_95` 1.96 x the standard error of their difference; `within_noise`: "
        "|delta| <= noise_95, a miss not told apart from sampling noise. `acc1_definition`: the Acc@1 compared "
        "(sampled: the mean accuracy of the samples, what Table 2's numbers are; greedy). "
        "In the tiny profile (a tiny random-init model on synthetic data) no agreement is expected. `ledger`: the "
        "docs/FIDELITY.md rows touching each number; `ledger_deviations`: those where this run's config departs "
        "from the authors' value."
    )
    write_table(df, csv_path, md_path, title=TITLE, notes=notes)
    return df
