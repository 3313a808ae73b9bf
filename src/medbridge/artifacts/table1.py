"""Table 1: linear-probe accuracy of the frozen vision towers, models x the 12 MedMNIST tasks (by modality).

One row per probed model with our accuracy (percent, balanced test subset) and, beside each dataset, the paper's
reported number in a column labelled `(reported)`; MedViT-v2, which the paper quotes and nobody here trains, is a
row of reported values only.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medbridge import MedbridgeError
from medbridge.artifacts.reference import reported_value
from medbridge.artifacts.tables import write_table
from medbridge.data.medmnist import DATASETS, MODALITY
from medbridge.io import read_json

REFERENCE_TABLE = "table1_linear_probe_accuracy"
REFERENCE_ROWS = {"medvit_v2": "MedViT-v2"}  # reported-only rows: reference key -> label


def model_sources(cfg: dict) -> dict[str, str]:
    """Role -> where its weights come from, for the table's `source` column."""
    out = {}
    for role, spec in cfg["models"].items():
        if spec["source"] in ("hub", "local"):
            out[role] = spec.get("id") or spec.get("path")
        else:
            out[role] = f"{spec['source']} (this DAG" + (f", from {spec['init']})" if "init" in spec else ")")
    return out


def reported_col(dataset: str) -> str:
    return f"{dataset} (reported)"


def build_table1(probe_paths: list[str | Path], model_ids: dict[str, str] | None = None) -> pd.DataFrame:
    results: dict[str, dict[str, dict]] = {}
    for path in probe_paths:
        r = read_json(path)
        if not {"model", "dataset", "accuracy"} <= set(r):
            raise MedbridgeError(f"{path} lacks model/dataset/accuracy; remake it with `medbridge probe`")
        if r["dataset"] not in MODALITY:
            raise MedbridgeError(f"{path}: unknown dataset {r['dataset']!r}; choose one of {list(DATASETS)}")
        results.setdefault(r["model"], {})[r["dataset"]] = r
    datasets = [d for d in DATASETS if any(d in per for per in results.values())]  # the paper's modality order
    rows = []
    for model, per in results.items():
        row = {
            "model": model,
            "source": (model_ids or {}).get(model, ""),
            "features": _one(per, "features"),
            "head": _one(per, "head"),
        }
        for d in datasets:
            row[d] = 100 * per[d]["accuracy"] if d in per else None
            row[reported_col(d)] = reported_value(REFERENCE_TABLE, model, d)
        rows.append(row)
    for key, label in REFERENCE_ROWS.items():
        row = {"model": f"{label} (reported)", "source": "reported in the paper", "features": "", "head": ""}
        for d in datasets:
            row[d] = None
            row[reported_col(d)] = reported_value(REFERENCE_TABLE, key, d)
        rows.append(row)
    df = pd.DataFrame(rows)
    # Blank, not "nan", where a cell has no value (MedViT-v2 was not run; a role the paper did not report).
    for col in df.columns[4:]:
        df[col] = df[col].map(lambda v: "" if v is None or pd.isna(v) else round(float(v), 4)).astype(object)
    return df


def _one(per: dict, key: str) -> str:
    return ",".join(sorted({str(r.get(key, "")) for r in per.values()}))


def write_table1(
    probe_paths: list[str | Path], csv_path: str | Path, md_path: str | Path, model_ids: dict[str, str] | None = None
) -> pd.DataFrame:
    df = build_table1(probe_paths, model_ids)
    groups = {}
    for d in DATASETS:
        if d in df.columns:
            groups.setdefault(MODALITY[d], []).append(d)
    notes = (
        "Accuracy (%) of a linear probe on the frozen vision tower, on a balanced subset of each test split "
        "(ChestMNIST: 14-way accuracy over single-finding images). Columns marked `(reported)` are the paper's "
        "numbers (Jeddi et al., 2026, Table 1), shown for comparison only; the MedViT-v2 row is reported, not run.\n\n"
        "Modality groups: " + "; ".join(f"{m.replace('_', ' ')}: {', '.join(ds)}" for m, ds in groups.items())
    )
    write_table(df, csv_path, md_path, title="Table 1: linear probes of frozen vision towers", notes=notes)
    return df
