"""Benchmark: the paper's three RL claims on seeds 0, 1 and 2 of a profile (default config/small.yaml), each measured
as `medbridge claims` measures it (paired 95% bootstrap CIs over the same items; claim 2 on the mean accuracy of the
samples, greedy Acc@1 beside it), with GRPO-from-sft's training reward curve and what changed per item. Budget: at
most 20 minutes on 2 idle cores for the three seeds. A benchmark, not a test: it trains and evaluates for minutes.

    .venv/bin/python benchmarks/claims_seeds.py [--configfile config/small.yaml] [--seeds 0 1 2] [--cores 2] [--keep]
        [--set "train.grpo.lr=0.1 train.grpo.max_steps=120"] [--reuse]

Each seed runs the claims artifact and only what it needs (`snakemake results/<run>/artifacts/claims.md`), with run
name `bench-claims-<profile>-s<seed>`; the runs are removed afterwards unless --keep. `--set` changes config keys
as `--config set=...` does (README); with `--reuse` a kept run is not removed first, so Snakemake reruns only the
jobs whose settings changed (a GRPO key: the two GRPO models, their generations and the claims, not the SFT
bridge). It prints, per seed, the three claims, the training reward of GRPO from sft (from its training_log.csv,
mean per block of steps), the letter versus the class named in `<think>` (sft and GRPO from sft), the items whose
sample mean went up or down; then the README's per-seed table. `--readme` writes it into README.md ("What the tiny
run shows", between the `claims-seeds` markers), refused with `--set` (the README shows the profile as it is).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # this tree's package, whatever an editable install points at
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
THINK = re.compile(r"<think>.*?shows (.*?)\.?\s*</think>", re.S)


def run_seed(configfile: str, run: str, seed: int, cores: int, settings: str = "") -> float:
    target = f"results/{run}/artifacts/claims.md"
    t0 = time.perf_counter()
    overrides = [f"run_name={run}", f"seed={seed}"] + ([f"set={settings}"] if settings else [])
    proc = subprocess.run(
        [
            SNAKEMAKE,
            target,
            "--cores",
            str(cores),
            "--configfile",
            configfile,
            "--config",
            *overrides,
            "--quiet",
            "all",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit(f"snakemake failed on seed {seed}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def names_its_think(answer: dict, options: dict) -> bool:
    """The answer's letter names the class its <think> names."""
    named = THINK.search(answer["text"])
    return answer["choice"] is not None and named is not None and options.get(answer["choice"]) == named[1]


def letter_agrees(generations: Path) -> tuple[float, float]:
    """Share of answers whose letter is the option of the class named in `<think>` (greedy, samples)."""
    greedy, samples, n_samples, rows = 0, 0, 0, 0
    for line in generations.read_text().splitlines():
        r = json.loads(line)
        greedy += names_its_think(r["greedy"], r["options"])
        samples += sum(names_its_think(s, r["options"]) for s in r["samples"])
        n_samples += len(r["samples"])
        rows += 1
    return greedy / rows, samples / max(n_samples, 1)


def reward_curve(log_csv: Path, blocks: int = 5) -> list[float]:
    """Mean accuracy reward of the rollouts per block of consecutive training steps (first to last)."""
    r = pd.read_csv(log_csv)["rewards/accuracy_reward/mean"].dropna().to_numpy()
    return [float(b.mean()) for b in np.array_split(r, min(blocks, len(r)))]


def item_changes(before: Path, after: Path) -> tuple[int, int, int]:
    """Items whose sample mean went up, down, or stayed, from sft to GRPO from sft."""
    b, a = (np.array(json.loads(p.read_text())["per_item"]["acc1_sampled"]) for p in (before, after))
    return int((a > b).sum()), int((a < b).sum()), int((a == b).sum())


def ci_text(lo, hi) -> str:
    return "no CI" if lo is None or pd.isna(lo) else f"[{100 * lo:+.1f}, {100 * hi:+.1f}]"


def change(before, after, lo, hi) -> str:
    return f"{100 * before:.1f} -> {100 * after:.1f}, {100 * (after - before):+.1f} {ci_text(lo, hi)}"


def seed_report(run_dir: Path, seed: int, wall: float) -> dict:
    from medbridge.artifacts.rq3 import rq3_model

    cfg = json.loads((run_dir / "config.json").read_text())
    claims = pd.read_csv(run_dir / "artifacts" / "claims.csv")
    task = claims.task.iloc[0]
    rl = rq3_model(cfg, "sft", task)
    c1, c2, c3 = (claims.iloc[i] for i in range(3))
    up, down, same = item_changes(*(run_dir / "metrics" / m / f"{task}.json" for m in ("sft", rl)))
    return {
        "seed": seed,
        "n_items": int(c1.n_items),
        "task": task,
        "wall_s": wall,
        "held": ["held" if h else "NOT held" for h in claims.held],
        "claim1": f"Pass@K {change(c1.before, c1.after, c1.ci_low, c1.ci_high)}",
        "claim2": f"{change(c2.before, c2.after, c2.ci_low, c2.ci_high)}",
        "greedy": (
            change(c2.beside_before, c2.beside_after, c2.beside_ci_low, c2.beside_ci_high)
            if "beside_before" in claims and not pd.isna(c2.beside_before)
            else "n/a"
        ),
        "claim3": f"{change(c3.before, c3.after, c3.ci_low, c3.ci_high)}",
        "reward": reward_curve(run_dir / "models" / rl / "training_log.csv"),
        "agree": {m: letter_agrees(run_dir / "generations" / m / f"{task}.jsonl") for m in ("sft", rl)},
        "items": (up, down, same),
        "numbers": claims.numbers.tolist(),
    }


def readme_table(reports: list[dict], configfile: str) -> str:
    head = (
        "| seed | 1. support: Pass@8 base -> sft | 2. sharpening: Acc@1 (mean of samples) sft -> GRPO | "
        "greedy Acc@1 beside it | 3. GRPO from base: Acc@1 | training reward (first -> last fifth) |\n"
        "|---|---|---|---|---|---|\n"
    )
    rows = "".join(
        f"| {r['seed']} | {r['claim1'].removeprefix('Pass@K ')} ({r['held'][0]}) | {r['claim2']} ({r['held'][1]}) | "
        f"{r['greedy']} | {r['claim3']} ({r['held'][2]}) | {r['reward'][0]:.2f} -> {r['reward'][-1]:.2f} |\n"
        for r in reports
    )
    n = reports[0]["n_items"]
    held2 = sum(r["held"][1] == "held" for r in reports)
    return (
        f"{head}{rows}\n`{configfile}`, {n} eval items of {reports[0]['task']}, pp with paired 95% bootstrap CIs; "
        f"sharpening held on {held2} of {len(reports)} seeds. Remake: "
        f"`.venv/bin/python benchmarks/claims_seeds.py --configfile {configfile} --readme`."
    )


README_START, README_END = "<!-- claims-seeds: made by benchmarks/claims_seeds.py -->", "<!-- claims-seeds: end -->"


def write_readme(table: str) -> None:
    """The table between README.md's claims-seeds markers (medbridge.io.write_text: temp file, then rename)."""
    from medbridge.io import write_text

    readme = (ROOT / "README.md").read_text()
    a, b = readme.index(README_START), readme.index(README_END) + len(README_END)
    write_text(ROOT / "README.md", readme[:a] + f"{README_START}\n{table}\n{README_END}" + readme[b:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configfile", default="config/small.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the runs under results/")
    ap.add_argument("--set", default="", help='config keys to change, e.g. "train.grpo.lr=0.1" (README: --config set)')
    ap.add_argument("--reuse", action="store_true", help="do not remove a kept run first: rerun what changed")
    ap.add_argument("--readme", action="store_true", help="write the table into README.md (not with --set)")
    args = ap.parse_args()
    if args.readme and args.set:
        sys.exit("--readme with --set: the README shows the profile's own settings; drop one of them")
    profile = yaml.safe_load((ROOT / args.configfile).read_text())["run_name"]
    reports, t_all = [], time.perf_counter()
    for seed in args.seeds:
        run = f"bench-claims-{profile}-s{seed}"
        if not args.reuse:
            shutil.rmtree(ROOT / "results" / run, ignore_errors=True)
        wall = run_seed(args.configfile, run, seed, args.cores, args.set)
        r = seed_report(ROOT / "results" / run, seed, wall)
        reports.append(r)
        print(f"\n== seed {seed}: {r['n_items']} eval items of {r['task']}, {wall:.0f} s ==")
        for held, numbers in zip(r["held"], r["numbers"], strict=True):
            print(f"  {held}: {numbers}")
        print(
            "  training reward of GRPO from sft (accuracy, mean per fifth of the steps): "
            + " -> ".join(f"{v:.2f}" for v in r["reward"])
        )
        print(
            "  letter agrees with the class named in <think> (greedy / samples): "
            + "; ".join(f"{m} {g:.2f} / {s:.2f}" for m, (g, s) in r["agree"].items())
        )
        print("  items whose sample mean went up / down / stayed (sft -> GRPO): {} / {} / {}".format(*r["items"]))
        if not args.keep:
            shutil.rmtree(ROOT / "results" / run, ignore_errors=True)
    total = time.perf_counter() - t_all
    print(
        f"\nwall time, {len(args.seeds)} seeds on {args.cores} cores: {total:.0f} s (budget 1200 s)"
        + (f"; settings changed: {args.set}" if args.set else "")
    )
    table = readme_table(reports, args.configfile)
    print("\nREADME table:\n")
    print(table)
    if args.readme:
        write_readme(table)
        print("README.md: claims-seeds section written")


if __name__ == "__main__":
    main()
