"""A real SLURM run: scripts/slurm_local.sh brings up a one-node cluster on loopback (slurmctld, slurmd, munged; a
`cpu` and a `gpu` partition; two fake GPUs), part of the tiny DAG runs through the SLURM executor plugin with the
resources of profiles/slurm (a 2-GPU training job among them), and the cluster goes down again. Needs root (and
apt-get, on a machine without SLURM)."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from medbridge.config import validate_config

from .conftest import ROOT

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

BIN = Path(sys.executable).parent
SCRIPT = ROOT / "scripts" / "slurm_local.sh"
DAEMONS = ("slurmctld", "slurmd", "sbatch", "munged")


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "a local SLURM cluster needs root (scripts/slurm_local.sh starts slurmctld, slurmd and munged)"
    if not all(shutil.which(d) for d in DAEMONS) and not shutil.which("apt-get"):
        return "SLURM is not installed and there is no apt-get to install it (slurmctld slurmd slurm-client munge)"
    return None


def script(cmd: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), cmd], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cluster():
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    already_up = script("status").returncode == 0  # someone's own cluster: use it, leave it running
    if not already_up:
        up = script("up")
        assert up.returncode == 0, up.stdout + up.stderr
    yield
    if not already_up:
        down = script("down")
        assert down.returncode == 0, down.stdout + down.stderr
        state = Path(os.environ.get("MEDBRIDGE_SLURM_DIR", "/tmp/medbridge-slurm"))
        assert not any((state / f"{d}.pid").exists() for d in ("slurmctld", "slurmd", "munged"))
        assert script("status").returncode != 0


def slurm_test_profile(tmp_path: Path) -> Path:
    """profiles/slurm adapted to this one small node: the same executor, retries, requeue and rule resources, with
    memory/time/cores scaled down, the partitions named by scripts/slurm_local.sh, no containers (no apptainer here),
    the squeue status check (no accounting daemon), and build_tiny standing in as a GPU rule with the GPU shape the
    others get here."""
    import yte

    from medbridge.bookings import GPU_RULES

    with open(ROOT / "profiles" / "slurm" / "config.yaml") as f:  # a YTE template, as Snakemake reads it
        profile = yte.process_yaml(f, require_use_yte=True)
    for key in ("configfile", "software-deployment-method", "apptainer-args"):
        profile.pop(key)
    profile["default-resources"].update(slurm_partition="cpu", mem_mb="500 * attempt", runtime="10 * attempt")
    # every GPU rule (medbridge.bookings) overridden to this node's size, as a site overrides a rule's booking; not
    # `generate`, which these tests run split (job_hours): the assembler, a CPU job
    small_gpu = dict(slurm_partition="gpu", gpu=1, cpus_per_gpu=1, mem_mb="1500 * attempt", runtime="10 * attempt")
    gpu_rules = {rule: dict(small_gpu) for rule in (*GPU_RULES, "build_tiny") if rule != "generate"}
    # training keeps its own GPU shape (nodes: 1, from the rule) on 2 fake GPUs: 2 processes, 1 core each
    gpu_rules["sft_model"] = dict(small_gpu, gpu=2, mem_mb="3000 * attempt", runtime="15 * attempt")
    cpu_rules = {
        r: {**res, "mem_mb": "500 * attempt", "runtime": "10 * attempt"}
        for r, res in profile["set-resources"].items()
        if r not in gpu_rules
    }
    for res in cpu_rules.values():
        res.pop("cpus_per_task", None)
    profile["set-resources"] = {**cpu_rules, **gpu_rules}
    profile["set-threads"] = {rule: res["gpu"] * res["cpus_per_gpu"] for rule, res in gpu_rules.items()}
    profile.update(
        {
            "jobs": 2,
            "retries": 0,
            "latency-wait": 5,
            "slurm-status-command": "squeue",
            "slurm-init-seconds-before-status-checks": 2,
            "slurm-keep-successful-logs": True,
        }
    )
    out = tmp_path / "profile"
    out.mkdir()
    (out / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return out


def scontrol(jobid: str) -> str:
    return subprocess.run(["scontrol", "show", "job", jobid], capture_output=True, text=True, check=True).stdout


def test_tiny_dag_runs_through_slurm_with_a_gpu_request(cluster, tmp_path):
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["run_name"] = "slurm"
    cfg["data"]["synthetic"] = {"n_train": 24, "n_val": 8, "n_test": 16, "noise": 0.35}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    targets = ["results/slurm/mcq/pneumoniamnist/test.jsonl", "results/slurm/models/base"]  # a CPU chain, a "GPU" job
    node = tmp_path / "node-local"  # the jobs' $TMPDIR (node-local scratch on a real cluster)
    node.mkdir()
    from medbridge.scratch import CACHE_VARS

    env = {k: v for k, v in os.environ.items() if k not in CACHE_VARS}  # (torch, imported by other tests, sets one)
    env |= {"PATH": f"{BIN}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1", "TMPDIR": str(node)}
    proc = subprocess.run(
        [
            str(BIN / "snakemake"),
            "--profile",
            str(slurm_test_profile(tmp_path)),
            "--configfile",
            "config.yaml",
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--verbose",
            *targets,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert (tmp_path / targets[0]).stat().st_size > 0 and (tmp_path / targets[1] / "config.json").exists()

    # rule -> SLURM job ids, from the executor's own report of each submission
    submitted: dict[str, list[str]] = {}
    for jobid, logfile in re.findall(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)", log):
        rule = re.search(r"/rule_(\w+)/", logfile).group(1)
        submitted.setdefault(rule, []).append(jobid)
    assert {"mcq_items", "build_tiny"} <= set(submitted), submitted
    assert "medmnist_npz" not in submitted  # a download: a local rule, run once by Snakemake on the login node
    assert "medmnist_check" in submitted  # reading the file back is a cluster job
    # a job's caches went to its own folder under $TMPDIR (not the checkout), removed when it ended
    side = json.loads(
        (tmp_path / "results/slurm/data/medmnist/pneumoniamnist_64.npz.check.json.provenance.json").read_text()
    )
    job_dir = node / f"medbridge-job-{side['slurm_job_id']}"
    assert side["slurm_job_id"] in submitted["medmnist_check"] and side["caches"], side
    assert all(Path(v).is_relative_to(job_dir) for v in side["caches"].values()), side["caches"]
    assert not job_dir.exists()

    sbatch_calls = re.findall(r"sbatch call: (.*)", log)
    gpu_calls = [c for c in sbatch_calls if "rule_build_tiny" in c]
    assert gpu_calls and all("--gpus=1" in c for c in gpu_calls), gpu_calls
    assert all("--gpus" not in c for c in sbatch_calls if c not in gpu_calls)
    assert all(" --requeue" in c for c in sbatch_calls)  # the profile's slurm-requeue reaches sbatch

    # what SLURM itself recorded (finished jobs stay visible for MinJobAge=600 s)
    for rule, jobids in submitted.items():
        for jobid in jobids:
            info = scontrol(jobid)
            assert "JobState=COMPLETED" in info, info
            gpu_request = re.search(r"TresPerJob=\S*gres[:/]gpu[:=]1", info)
            if rule == "build_tiny":
                assert gpu_request and "Partition=gpu" in info, info
            else:
                assert not gpu_request and "Partition=cpu" in info, info


def test_training_on_two_gpus_launches_two_processes(cluster, tmp_path):
    """sft_model asks for 2 GPUs on one node; `medbridge sft` launches one process per GPU SLURM gave the job
    (CUDA_VISIBLE_DEVICES=0,1 of the fake GPUs) on a free port, and the 2 processes train the tiny model on CPU over
    gloo (config/accelerate/ddp.yaml with train.device: cpu)."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["run_name"] = "slurm2"
    cfg["data"]["synthetic"] = {"n_train": 24, "n_val": 8, "n_test": 16, "noise": 0.35}
    cfg["train"]["accelerate_config"] = str(ROOT / "config" / "accelerate" / "ddp.yaml")
    cfg["train"]["sft"].update(max_steps=4, save_steps=2, batch_size=2, prompts=["eval"])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    target = "results/slurm2/models/sft"
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            str(BIN / "snakemake"),
            "--profile",
            str(slurm_test_profile(tmp_path)),
            "--configfile",
            "config.yaml",
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--verbose",
            target,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    sbatch = [c for c in re.findall(r"sbatch call: (.*)", log) if "rule_sft_model" in c]
    assert len(sbatch) == 1 and "--gpus=2" in sbatch[0] and "--nodes=1" in sbatch[0], sbatch
    train_log = (tmp_path / "results/slurm2/logs/models/sft.log").read_text()
    launch = re.search(r"launching: .*accelerate.commands.launch .*", train_log)
    assert launch, train_log[-3000:]
    args = launch.group(0).split()
    assert args[args.index("--num_processes") + 1] == "2"
    port = int(args[args.index("--main_process_port") + 1])
    assert 1024 < port < 65536
    with open(tmp_path / target / "training_log.csv") as f:
        steps = [row for row in csv.DictReader(f) if row.get("loss")]
    assert len(steps) == 4
    # 2 processes x batch 2 per step: an epoch of the n training rows takes ceil(n / 4) steps (one process: n / 2)
    n = len((tmp_path / "results/slurm2/mcq/organamnist/train.jsonl").read_text().splitlines())
    assert float(steps[-1]["epoch"]) == pytest.approx(4 / math.ceil(n / 4), abs=1e-3), (n, steps[-1])
    jobid = re.search(r"submitted with SLURM jobid (\d+) \(log: \S*rule_sft_model", log).group(1)
    info = scontrol(jobid)
    assert "JobState=COMPLETED" in info and re.search(r"TresPerJob=\S*gres[:/]gpu[:=]2", info), info


def test_generation_parts_run_at_once_on_gpus_then_assemble_on_a_cpu(cluster, tmp_path):
    """evaluate.job_hours splits the base model's generation in two: two generate_part jobs, one fake GPU each, run
    side by side on the gpu partition; `generate` then assembles their shards in the cpu partition, and its files
    are the one-job run's."""
    from medbridge.generate.parts import generation_parts
    from medbridge.plan import Assumptions, Sizes, generation_work

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for key in ("rq3", "vqa"):  # base's eval sets: organamnist's MCQ test items and the recipe's val subset
        cfg.pop(key)
    cfg["run_name"] = "slurm-parts"
    cfg["data"].update(datasets=["organamnist"], synthetic={"n_train": 24, "n_val": 8, "n_test": 16, "noise": 0.35})
    cfg["evaluate"].update(n_samples=2, k=[1, 2], shard_size=4)
    cfg["recipe"]["k"] = 2
    validate_config(cfg)  # the schema's defaults filled in, as the DAG and the plan see the config
    a = Assumptions()
    sizes = Sizes(cfg, {}, a.reference_params_b, count_files=False)
    work = generation_work(sizes, a, "base", sizes.eval_sets()["base"])
    cfg["evaluate"]["job_hours"] = (work.budget_s / 1.5 + work.fixed_s) / 3600  # the tiny model's work in 2 parts
    assert generation_parts(cfg)["base"] == 2
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    base = ["--configfile", "config.yaml", "--snakefile", str(ROOT / "Snakefile")]
    proc = subprocess.run(
        [
            str(BIN / "snakemake"),
            "--profile",
            str(slurm_test_profile(tmp_path)),
            *base,
            "--verbose",
            "results/slurm-parts/generations/base",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    submitted: dict[str, list[str]] = {}
    for jobid, logfile in re.findall(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)", log):
        submitted.setdefault(re.search(r"/rule_(\w+)/", logfile).group(1), []).append(jobid)
    assert len(submitted["generate_part"]) == 2 and len(submitted["generate"]) == 1, submitted
    spans = []
    for jobid in submitted["generate_part"]:
        info = scontrol(jobid)
        assert "JobState=COMPLETED" in info and "Partition=gpu" in info, info
        assert re.search(r"TresPerJob=\S*gres[:/]gpu[:=]1", info), info
        spans.append([re.search(rf"{k}=(\S+)", info).group(1) for k in ("StartTime", "EndTime")])
    (s1, e1), (s2, e2) = spans
    assert s1 <= e2 and s2 <= e1, spans  # side by side (ISO times compare as strings)
    info = scontrol(submitted["generate"][0])
    assert "Partition=cpu" in info and not re.search(r"TresPerJob=\S*gpu", info), info
    run = tmp_path / "results/slurm-parts"
    receipts = [json.loads(p.read_text()) for p in sorted((run / "shards/generations/base/parts").glob("*.json"))]
    assert [r["part"] for r in receipts] == ["1-of-2", "2-of-2"] and all(r["shards"] for r in receipts)

    # one job (no job_hours) under another run name makes the same generations, byte for byte
    cfg["evaluate"].pop("job_hours")
    cfg["run_name"] = "slurm-one-job"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    one = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "2", *base, "results/slurm-one-job/generations/base"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert one.returncode == 0, one.stderr[-4000:]
    for split in sorted((run / "generations/base").glob("*.jsonl")):
        assert split.read_bytes() == (tmp_path / "results/slurm-one-job/generations/base" / split.name).read_bytes()
