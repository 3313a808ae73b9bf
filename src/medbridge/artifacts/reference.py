"""The paper's reported numbers (reference/paper_tables.yaml): a labelled comparison column, never a result."""

from __future__ import annotations

from functools import lru_cache

import yaml

from medbridge.config import PROJECT_ROOT

REFERENCE_PATH = PROJECT_ROOT / "reference" / "paper_tables.yaml"


@lru_cache(maxsize=1)
def reported() -> dict:
    return yaml.safe_load(REFERENCE_PATH.read_text())


def reported_value(table: str, row: str, column: str) -> float | None:
    """A reported percentage, e.g. reported_value('table2_accuracy_at_1', 'base', 'organamnist'); None if absent."""
    rows = reported().get(table, {})
    rows = rows.get("rows", rows)
    value = rows.get(row, {}).get(column)
    return None if value is None else float(value)
