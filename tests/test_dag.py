"""The Snakemake DAG: dry runs of the shipped configs, and the tiny profile end to end."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def snakemake(*args, cwd=ROOT, timeout=1800):
    return subprocess.run([SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("configfile", [None, "config/paper.yaml", "config/small.yaml"])
def test_dry_run_passes(configfile):
    args = ["-n", "--quiet", "rules"] + (["--configfile", configfile] if configfile else [])
    proc = snakemake(*args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_bad_config_stops_the_dag_at_once():
    proc = snakemake("-n", "--config", "evaluate={'backend': 'ollama'}")
    assert proc.returncode != 0
    assert "backend" in proc.stdout + proc.stderr


ARTIFACTS = [
    "table1_probe.csv",
    "table1_probe.md",
    "table2_acc1.csv",
    "table2_acc1.md",
    "fig1_passk.csv",
    "fig1_passk.png",
    "fig2_rq3_transfer.csv",
    "fig2_rq3_transfer.png",
    "table3_vqa.csv",
    "table3_vqa.md",
    "recipe_decisions.csv",
    "comparison.csv",
    "comparison.md",
    "claims.csv",
    "claims.md",
]


@pytest.fixture(scope="module")
def two_tiny_runs():
    """The whole tiny DAG, twice from clean results under two run names (removed afterwards)."""
    import shutil

    runs = ["pytest-e2e-a", "pytest-e2e-b"]
    for run in runs:
        shutil.rmtree(ROOT / "results" / run, ignore_errors=True)
        proc = snakemake("--cores", "2", "--config", f"run_name={run}", "--quiet", "all")
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    yield [ROOT / "results" / r for r in runs]
    for run in runs:
        shutil.rmtree(ROOT / "results" / run, ignore_errors=True)


@pytest.mark.slow
def test_tiny_dag_makes_every_artifact_with_provenance(two_tiny_runs):
    art = two_tiny_runs[0] / "artifacts"
    for name in ARTIFACTS:
        assert (art / name).stat().st_size > 0, name
        side = json.loads((art / f"{name}.provenance.json").read_text())
        assert side["inputs"] and side["git"]["commit"] and side["config_hash"], name
    for metrics in (two_tiny_runs[0] / "metrics").rglob("*.json"):
        if not metrics.name.endswith(".provenance.json"):
            assert Path(f"{metrics}.provenance.json").exists(), metrics


def _metrics(run: Path) -> list[dict]:
    return [
        json.loads(p.read_text())
        for p in sorted((run / "metrics").rglob("*.json"))
        if not p.name.endswith(".provenance.json")
    ]


@pytest.mark.slow
def test_metrics_are_consistent(two_tiny_runs):
    """Values that could be wrong: Pass@K never falls as K rises, every value lies inside its own interval, and the
    unbiased Pass@1 equals the mean fraction of correct samples."""
    checked = 0
    for m in _metrics(two_tiny_runs[0]):
        ks = sorted(m["pass_at_k"], key=int)
        values = [m["pass_at_k"][k] for k in ks]
        assert values == sorted(values), (m["model"], m["evalset"], values)
        for value, (lo, hi) in [(m["acc1"], m["acc1_ci"])] + [(m["pass_at_k"][k], m["pass_at_k_ci"][k]) for k in ks]:
            assert lo - 1e-9 <= value <= hi + 1e-9, (m["model"], m["evalset"], value, lo, hi)
        checked += bool(ks)
    assert checked >= 3 * 12  # every evaluated model on every MedMNIST set has sampled answers


@pytest.mark.slow
def test_sft_raises_support_on_its_training_task(two_tiny_runs):
    """The tiny run's one claim about SFT that is not noise: base (random init) has almost no support, SFT on
    organamnist gives it (Pass@K at the largest K, on the test subset)."""
    by = {(m["model"], m["evalset"]): m for m in _metrics(two_tiny_runs[0])}
    k = str(max(int(k) for k in by["sft", "organamnist"]["pass_at_k"]))
    base, sft = by["base", "organamnist"]["pass_at_k"][k], by["sft", "organamnist"]["pass_at_k"][k]
    assert sft > base + 0.2, (base, sft)
    assert by["sft", "organamnist"]["pass_at_k_ci"][k][0] > by["base", "organamnist"]["pass_at_k_ci"][k][1]


@pytest.mark.slow
def test_one_generation_and_one_scoring_job_per_model(two_tiny_runs):
    """Each model is loaded once for all its eval sets (Snakemake's benchmark files are per job)."""
    run = two_tiny_runs[0]
    models = sorted(p.name for p in (run / "generations").iterdir() if p.is_dir())
    assert sorted(p.stem for p in (run / "benchmarks" / "generate").glob("*.tsv")) == models
    assert sorted(p.stem for p in (run / "benchmarks" / "score").glob("*.tsv")) == models
    assert len(list((run / "generations" / "base").glob("*.jsonl"))) > 12  # MedMNIST test + val sets, benchmarks
    # the rl role is GRPO from sft on organamnist: the grid uses it, no second rq3-sft-organamnist training
    assert (run / "models" / "rl").is_dir() and not (run / "models" / "rq3-sft-organamnist").exists()


@pytest.mark.slow
def test_two_tiny_runs_give_identical_tables(two_tiny_runs):
    a, b = (r / "artifacts" for r in two_tiny_runs)
    for name in ARTIFACTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name} differs between two identical runs"


@pytest.mark.slow
def test_rerun_is_a_no_op(two_tiny_runs):
    proc = snakemake("--cores", "2", "--config", f"run_name={two_tiny_runs[0].name}", "-n", "all")
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_audit_recomputes_a_table2_cell_and_flags_a_hand_edit(two_tiny_runs):
    run = two_tiny_runs[1]
    table = str(run / "artifacts" / "table2_acc1.csv")
    medbridge = str(Path(sys.executable).with_name("medbridge"))
    ok = subprocess.run(
        [medbridge, "audit", table, "--model", "sft", "--column", "organamnist"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "verdict: MATCHES" in ok.stdout, ok.stdout + ok.stderr
    gen = run / "generations" / "sft" / "organamnist.jsonl"
    rows = [json.loads(line) for line in gen.read_text().splitlines()]
    rows[0]["greedy"]["text"] = "<answer>" + ("B" if rows[0]["answer"] == "A" else "A") + "</answer>"
    gen.write_text("".join(json.dumps(r) + "\n" for r in rows))
    bad = subprocess.run(
        [medbridge, "audit", table, "--model", "sft", "--column", "organamnist"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1
    assert "hand-edited" in bad.stdout and "DOES NOT MATCH" in bad.stdout


@pytest.mark.slow
def test_snakemake_report_builds(two_tiny_runs, tmp_path):
    out = tmp_path / "report.zip"
    proc = snakemake("--config", f"run_name={two_tiny_runs[0].name}", "--report", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    import zipfile

    names = zipfile.ZipFile(out).namelist()
    assert any(n.endswith("table2_acc1.csv") for n in names) and any(n.endswith("fig1_passk.png") for n in names)


@pytest.mark.slow
def test_readme_claims_are_the_tiny_runs(two_tiny_runs):
    """README's "What the tiny run shows" is the claims table a fresh tiny run writes (scripts/readme_claims.py)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from readme_claims import readme_section, section

    made = section((two_tiny_runs[0] / "artifacts" / "claims.md").read_text())
    assert readme_section((ROOT / "README.md").read_text()) == made, "run scripts/readme_claims.py"


@pytest.mark.slow
def test_plan_calibrates_on_the_runs_own_benchmark_files(two_tiny_runs):
    """The benchmark files the DAG leaves (benchmarks/<rule>/<wildcards>.tsv) are the ones `medbridge plan` reads."""
    from medbridge.config import load_config
    from medbridge.plan import plan

    run = two_tiny_runs[0]
    result = plan(load_config(run / "config.json"), benchmarks=run / "benchmarks")
    rows = {r["rule"]: r for r in result["rows"]}
    for rule in ("generate", "features", "sft_model", "grpo_model"):
        assert rows[rule]["calibrated_gpu_hours"] is not None, (rule, result.get("notes"))
    assert not [n for n in result.get("notes", []) if "ignored" in n and "generate" in n]
