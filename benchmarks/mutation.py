"""Mutation score of the package's core and plumbing modules (issue #25), with cosmic-ray (the `test` extra).

For each module below: a private copy of the checkout (the working tree is never mutated), cosmic-ray's mutants of
that one module, and each mutant run against the fast test files that import the module (`MODULES`); a mutant is
caught when they fail (or time out). Prints per module: mutants, caught, survived, the score, and each survivor
(line and diff) so it can be killed or explained; `--json` keeps everything.

Operators: one replacement per site, as a person would write a slip: a binary operator by its partner (+ -, * /,
// /, | &, ...), a comparison by its boundary and its negation (< to <= and >=; == to !=), and cosmic-ray's
number, boolean, unary, and/or, break/continue, exception, decorator and zero-iteration-loop operators. The
other operator pairs (a + turned into <<, == into `is`) are skipped: they mostly repeat a kill of the partner.

A benchmark, not a test: `make mutation` (every module, a seeded sample of at most 60 mutants each: 38 min on 2
idle cores, measured; `--sample 0` runs all ~1,400; `--dry-run` prints the counts and an upper bound of the time) or
`.venv/bin/python benchmarks/mutation.py --modules score/stats.py audit.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = "src/medbridge"

NOT_A_LETTER = "tests/test_paper_arithmetic.py::test_answer_not_a_letter_counts_tags_holding_more_than_a_letter"
# module (under src/medbridge) -> the fast tests that import it (pytest node ids; no model training, no DAG run)
MODULES: dict[str, list[str]] = {
    "score/passk.py": ["tests/test_passk.py", "tests/test_mutants_metrics.py"],
    "score/extract.py": ["tests/test_extract.py", "tests/test_mutants_text.py"],
    "score/stats.py": ["tests/test_stats.py", "tests/test_mutants_metrics.py"],
    "score/metrics.py": [
        "tests/test_mutants_metrics.py",
        "tests/test_mutants_audit.py",
        "tests/test_generate.py::test_metrics_on_constructed_rows",
    ],
    "train/rewards.py": ["tests/test_rewards.py", "tests/test_mutants_text.py", NOT_A_LETTER],
    "train/care.py": ["tests/test_care.py", "tests/test_mutants_care.py"],
    "recipe.py": ["tests/test_recipe.py", "tests/test_mutants_recipe.py"],
    "audit.py": ["tests/test_mutants_audit.py"],
    "generate/run.py": ["tests/test_mutants_shards.py"],
    "config.py": ["tests/test_config.py", "tests/test_mutants_config.py"],
}
PLAN_TESTS = ["tests/test_plan.py", "tests/test_mutants_plan.py"]  # `medbridge plan`, a package: each module
MODULES |= {f"plan/{m}.py": PLAN_TESTS for m in ("sizes", "assumptions", "costs", "profile", "estimate", "report")}
# tests of a listed file that are not fast (a Snakemake subprocess): left out of every mutant's run
DESELECT = ["tests/test_config.py::test_snakemake_configfile_with_exponent_floats"]

_PARTNERS = {
    "Add": ["Sub"],
    "Sub": ["Add"],
    "Mul": ["Div"],
    "Div": ["Mul"],
    "FloorDiv": ["Div"],
    "Mod": ["FloorDiv"],
    "Pow": ["Mul"],
    "BitOr": ["BitAnd"],
    "BitAnd": ["BitOr"],
    "BitXor": ["BitOr"],
    "LShift": ["RShift"],
    "RShift": ["LShift"],
}
_COMPARISONS = {
    "Lt": ["LtE", "GtE"],
    "LtE": ["Lt", "Gt"],
    "Gt": ["GtE", "LtE"],
    "GtE": ["Gt", "Lt"],
    "Eq": ["NotEq"],
    "NotEq": ["Eq"],
    "Is": ["IsNot"],
    "IsNot": ["Is"],
    "In": ["NotIn"],
    "NotIn": ["In"],
}


def excluded_operators() -> list[str]:
    """cosmic-ray operator names (anchored regexes) that the run skips: every binary/comparison pair but the kept
    ones above, and the operators that need arguments (variable insert/replace)."""
    from cosmic_ray.plugins import operator_names

    keep = {f"core/ReplaceBinaryOperator_{a}_{b}" for a, bs in _PARTNERS.items() for b in bs}
    keep |= {f"core/ReplaceComparisonOperator_{a}_{b}" for a, bs in _COMPARISONS.items() for b in bs}
    out = []
    for name in operator_names():
        pair = name.startswith(("core/ReplaceBinaryOperator_", "core/ReplaceComparisonOperator_"))
        if (pair and name not in keep) or name in ("core/VariableInserter", "core/VariableReplacer"):
            out.append(re.escape(name) + "$")
    return out


def project_copy(dest: Path) -> Path:
    """The checkout's files as git sees them (tracked and untracked, not ignored), plus an empty results/."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True, capture_output=True
        )
        .stdout.decode()
        .split("\0")
    )
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
    (dest / "results").mkdir(exist_ok=True)
    return dest


def test_command(module: str) -> str:
    tests = " ".join(MODULES[module])
    deselect = " ".join(f"--deselect {d}" for d in DESELECT)
    return f"{sys.executable} -m pytest -x -q -p no:cacheprovider -p no:randomly {deselect} {tests}"


def _env(copy: Path) -> dict:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    own = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != ROOT / "src"]
    env["PYTHONPATH"] = os.pathsep.join([str(copy / "src"), *own])  # the copy's package, mutated, comes first
    return env


def _cr(args: list[str], copy: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=copy, env=env, capture_output=True, text=True)


def run_module(module: str, workdir: Path, dry_run: bool, sample: int) -> dict:
    copy = project_copy(workdir / module.replace("/", "_").removesuffix(".py"))
    env = _env(copy)
    t0 = time.monotonic()
    base = subprocess.run(test_command(module), shell=True, cwd=copy, env=env, capture_output=True, text=True)
    baseline_s = time.monotonic() - t0
    if base.returncode:
        return {"module": module, "error": f"tests fail unmutated:\n{base.stdout[-2000:]}{base.stderr[-2000:]}"}
    config = copy / "cosmic-ray.toml"
    config.write_text(
        "[cosmic-ray]\n"
        f"module-path = {json.dumps(f'{PKG}/{module}')}\n"
        f"timeout = {max(30.0, 3 * baseline_s + 10):.0f}\n"  # a mutant that hangs the tests counts as caught
        "excluded-modules = []\n"
        f"test-command = {json.dumps(test_command(module))}\n"
        '[cosmic-ray.distributor]\nname = "local"\n'
        "[cosmic-ray.filters.operators-filter]\n"
        f"exclude-operators = {json.dumps(excluded_operators())}\n"
    )
    session = copy / "session.sqlite"
    for step in (
        ["cosmic_ray.cli", "init", str(config), str(session)],
        ["cosmic_ray.tools.filters.operators_filter", str(session), str(config)],
        ["cosmic_ray.tools.filters.pragma_no_mutate", str(session)],
    ):
        proc = _cr(step, copy, env)
        if proc.returncode:
            return {"module": module, "error": f"{' '.join(step)}: {proc.stderr[-2000:]}"}
    skip_annotations(session, copy / PKG / module)
    total = len(_dump(copy, env, pending_only=True))
    sample_out(session, sample, seed=module)
    pending = _dump(copy, env, pending_only=True)
    out = {
        "module": module,
        "tests": MODULES[module],
        "baseline_s": round(baseline_s, 1),
        "mutants": len(pending),
        "of": total,
    }
    if dry_run:
        return out
    t0 = time.monotonic()
    proc = _cr(["cosmic_ray.cli", "exec", str(config), str(session)], copy, env)
    if proc.returncode:
        return out | {"error": f"cosmic-ray exec: {proc.stderr[-2000:]}"}
    out["wall_s"] = round(time.monotonic() - t0, 1)
    done = [(item, res) for item, res in _dump(copy, env) if res and res["worker_outcome"] != "skipped"]
    survivors = [(item, res) for item, res in done if res["test_outcome"] == "survived"]
    # cosmic-ray could not make the mutant (an operator's own error): no mutant, left out of the score
    errors = [(item, res) for item, res in done if res["worker_outcome"] == "exception"]
    out["mutants"] -= len(errors)
    out |= {
        "caught": sum(res["test_outcome"] == "killed" for _, res in done),
        "survived": len(survivors),
        "errors": len(errors),
        "survivors": [_describe(item, res) for item, res in survivors],
    }
    return out


def skip_annotations(session: Path, source: Path) -> None:
    """Mark mutants inside type annotations skipped: under `from __future__ import annotations` they are never
    evaluated (`int | None` to `int & None` changes nothing), so no test could catch them."""
    import ast

    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    tree = ast.parse(source.read_text())
    spans = []
    for node in ast.walk(tree):
        notes = [getattr(node, "returns", None), getattr(node, "annotation", None)]
        spans += [((a.lineno, a.col_offset), (a.end_lineno, a.end_col_offset)) for a in notes if a is not None]
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            pos = tuple(item.mutations[0].start_pos)
            if any(lo <= pos < hi for lo, hi in spans):
                skipped = WorkResult(output="in a type annotation", worker_outcome=WorkerOutcome.SKIPPED)
                db.set_result(item.job_id, skipped)


def sample_out(session: Path, sample: int, seed: str) -> None:
    """Keep a seeded random `sample` of the pending mutants (0: all), marking the others skipped: the score of a
    random sample estimates the module's score (binomial error, printed) at a fraction of the time."""
    import random

    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(session), WorkDB.Mode.open) as db:
        items = sorted(db.pending_work_items, key=lambda i: i.job_id)
        if not sample or len(items) <= sample:
            return
        keep = {i.job_id for i in random.Random(seed).sample(items, sample)}
        for item in items:
            if item.job_id not in keep:
                db.set_result(item.job_id, WorkResult(output="not sampled", worker_outcome=WorkerOutcome.SKIPPED))


def _dump(copy: Path, env: dict, pending_only: bool = False) -> list:
    proc = _cr(["cosmic_ray.cli", "dump", str(copy / "session.sqlite")], copy, env)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return [item for item, res in rows if res is None] if pending_only else rows


def _describe(item: dict, res: dict) -> dict:
    m = item["mutations"][0]
    diff = [ln for ln in (res.get("diff") or "").splitlines() if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
    return {"line": m["start_pos"][0], "operator": m["operator_name"].removeprefix("core/"), "diff": diff}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--modules",
        nargs="+",
        default=list(MODULES),
        choices=list(MODULES),
        metavar="MODULE",
        help=f"modules under {PKG} (default: all): {', '.join(MODULES)}",
    )
    p.add_argument("--jobs", type=int, default=2, help="modules mutated at once, each in its own copy (default 2)")
    p.add_argument(
        "--sample",
        type=int,
        default=60,
        help="mutants run per module, a seeded random sample (default 60; 0: every mutant, ~2.5 h)",
    )
    p.add_argument("--dry-run", action="store_true", help="count the mutants and time the tests once; run nothing")
    p.add_argument("--json", help="write every result (survivors' diffs included) to this file")
    p.add_argument("--keep", action="store_true", help="keep the copies and cosmic-ray sessions (printed)")
    args = p.parse_args(argv)
    for module in args.modules:
        dotted = f"medbridge.{module.removesuffix('.py').replace('/', '.')}"
        pkg, _, name = dotted.rpartition(".")
        for test in MODULES[module]:
            text = (ROOT / test.split("::")[0]).read_text()
            # a package's module counts as imported where the package is and its __init__ imports the module
            init = ROOT / PKG / module.rpartition("/")[0] / "__init__.py"
            via_pkg = init.is_file() and pkg in text and f"from {dotted} import" in init.read_text()
            direct = dotted in text or re.search(rf"from {re.escape(pkg)} import .*\b{name}\b", text)
            if not (direct or via_pkg):
                sys.exit(f"{test} does not import {dotted}; fix MODULES")
    workdir = Path(tempfile.mkdtemp(prefix="medbridge-mutation-"))
    t0 = time.monotonic()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda m: run_module(m, workdir, args.dry_run, args.sample), args.modules))
    wall = time.monotonic() - t0
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    print(f"{'module':<20} {'mutants':>9} {'caught':>6} {'survived':>8} {'score':>12} {'tests s':>7} {'wall s':>7}")
    for r in results:
        if "error" in r:
            print(f"{r['module']:<20} ERROR {r['error']}")
            continue
        count = f"{r['mutants']}/{r['of']}" if r["mutants"] < r["of"] else str(r["mutants"])  # sampled / all
        if args.dry_run:
            est = r["mutants"] * r["baseline_s"]
            print(f"{r['module']:<20} {count:>9} {'':>6} {'':>8} {'':>12} {r['baseline_s']:>7} {est:>7.0f} (at most)")
            continue
        n, k = r["mutants"], r["caught"]
        score = f"{100 * k / n:.0f}%" if n else "-"
        if n and n < r["of"]:  # a sample: +- one binomial standard error
            score += f" +-{100 * (k / n * (1 - k / n) / n) ** 0.5:.0f}"
        print(
            f"{r['module']:<20} {count:>9} {k:>6} {r['survived']:>8} {score:>12} {r['baseline_s']:>7} {r['wall_s']:>7}"
        )
    if not args.dry_run:
        caught, total = sum(r.get("caught", 0) for r in results), sum(r.get("mutants", 0) for r in results)
        print(f"{'total':<20} {total:>9} {caught:>6} {total - caught:>8} {100 * caught / max(total, 1):>11.0f}%")
        for r in results:
            for s in r.get("survivors", []):
                print(f"survived  {r['module']}:{s['line']}  {s['operator']}  {' | '.join(s['diff'])}")
            if r.get("errors"):
                print(f"{r['module']}: {r['errors']} mutation(s) cosmic-ray failed to make (left out of the score)")
    print(f"wall {wall:.0f} s, {args.jobs} job(s); copies in {workdir}" if args.keep else f"wall {wall:.0f} s")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
