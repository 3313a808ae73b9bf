"""Benchmark: wall time of the whole tiny DAG from a clean results/<run>/ on this machine's cores, and of a no-op
rerun (budgets: <= 240 s, stretch 120 s, and <= 2 s on 2 cores). Uses its own run name, removed afterwards unless --keep.

    .venv/bin/python benchmarks/dag_time.py [--cores 2] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([SNAKEMAKE, *args], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"snakemake failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    run = "bench-dag"
    shutil.rmtree(ROOT / "results" / run, ignore_errors=True)
    common = ["--cores", str(args.cores), "--config", f"run_name={run}", "--quiet", "all"]
    full = timed(common)
    noop = timed(common)
    print(f"tiny DAG from clean results, {args.cores} cores: {full:7.1f} s (budget 240 s, stretch 120 s)")
    print(f"no-op rerun:                         {noop:7.1f} s (budget 2 s)")
    if not args.keep:
        shutil.rmtree(ROOT / "results" / run, ignore_errors=True)


if __name__ == "__main__":
    main()
