"""Write a table artifact as CSV (for machines) and Markdown (for readers), atomically."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medbridge.io import write_text


def write_table(
    df: pd.DataFrame,
    csv_path: str | Path,
    md_path: str | Path | None = None,
    title: str = "",
    notes: str = "",
    floatfmt: str = ".2f",
) -> None:
    write_text(csv_path, df.to_csv(index=False, float_format="%.4f"))
    if md_path:
        md = (f"# {title}\n\n" if title else "") + df.to_markdown(index=False, floatfmt=floatfmt) + "\n"
        write_text(md_path, md + (f"\n{notes.strip()}\n" if notes else ""))


def fmt_ci(value: float | None, lo: float | None = None, hi: float | None = None, scale: float = 100.0) -> str:
    """'54.99 [50.1, 60.2]' in percent; '' when the value is missing."""
    if value is None:
        return ""
    s = f"{value * scale:.2f}"
    return s if lo is None or hi is None else f"{s} [{lo * scale:.1f}, {hi * scale:.1f}]"
