"""Benchmark: wall time of the whole tiny DAG from a clean results/<run>/ on this machine's cores, and of a no-op
rerun (budgets: <= 240 s, stretch 120 s, and <= 2 s on 2 cores). Uses its own run name, removed afterwards unless
--keep. Also Snakemake's own floor: the no-op rerun of a one-rule workflow (what no Snakefile can go below here).

    .venv/bin/python benchmarks/dag_time.py [--cores 2] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def timed(args: list[str], cwd: Path = ROOT) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True)
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
    noop = min(timed(common) for _ in range(3))  # best of 3: the machine's noise is not the DAG's
    print(f"tiny DAG from clean results, {args.cores} cores: {full:7.1f} s (budget 240 s, stretch 120 s)")
    print(f"no-op rerun (best of 3):             {noop:7.1f} s (budget 2 s)")
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "Snakefile").write_text('rule a:\n    output: "a"\n    shell: "touch {output}"\n')
        timed(["--cores", "1", "--quiet"], Path(tmp))
        floor = min(timed(["--cores", "1", "--quiet"], Path(tmp)) for _ in range(3))
    print(f"Snakemake's floor (one-rule no-op):  {floor:7.1f} s (best of 3)")
    if not args.keep:
        shutil.rmtree(ROOT / "results" / run, ignore_errors=True)


if __name__ == "__main__":
    main()
