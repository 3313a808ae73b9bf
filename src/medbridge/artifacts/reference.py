"""The paper's reported numbers (reference/paper_tables.yaml): a labelled comparison column, never a result."""

from __future__ import annotations

from functools import lru_cache

import yaml

from medbridge.config import PROJECT_ROOT

REFERENCE_PATH = PROJECT_ROOT / "reference" / "paper_tables.yaml"


@lru_cache(maxsize=1)
def reported() -> dict:
    return yaml.safe_load(REFERENCE_PATH.read_text())


# Items behind the paper's cells, from its own arithmetic (docs/FIDELITY.md, balanced-subsets, table3-size): every
# Table 1 cell is k/N with N = classes x the smallest test class; these are the smallest classes it gives
# (BreastMNIST 84 / 2, OCTMNIST 1000 / 4, ChestMNIST 315 / 15: no single finding is rarer than 21 either). OrganA/C/S
# and TissueMNIST's N are not determined by their cells. Table 2's cells are over the same N (x 16 samples).
SMALLEST_TEST_CLASS = {
    "breastmnist": 42,
    "chestmnist": 21,
    "pneumoniamnist": 234,
    "bloodmnist": 243,
    "pathmnist": 339,
    "dermamnist": 23,
    "octmnist": 250,
    "retinamnist": 20,
}
PAPER_CLASSES = {"chestmnist": 15}  # 14 single findings + "no finding" (mcq.chestmnist with_no_finding)
TABLE3_ITEMS = {"mmmu_health": 170}  # every other benchmark: 200 (its cells are multiples of 0.5 %)


def paper_items(table: str, column: str) -> int | None:
    """Items the paper's cell of `table` ('T1', 'T2', 'T3') in `column` is over, where its arithmetic tells; None
    where it does not."""
    if table == "T3":
        return TABLE3_ITEMS.get(column, 200)
    if column not in SMALLEST_TEST_CLASS:
        return None
    from medbridge.data.medmnist import dataset_info

    return PAPER_CLASSES.get(column, dataset_info(column).n_classes) * SMALLEST_TEST_CLASS[column]


def reported_value(table: str, row: str, column: str) -> float | None:
    """A reported percentage, e.g. reported_value('table2_accuracy_at_1', 'base', 'organamnist'); None if absent."""
    rows = reported().get(table, {})
    rows = rows.get("rows", rows)
    value = rows.get(row, {}).get(column)
    return None if value is None else float(value)
