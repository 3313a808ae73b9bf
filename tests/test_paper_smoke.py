"""The paper's settings run here: the pilot (config/pilot.yaml, which is config/paper.yaml on a thin slice; checked
below to differ from it only in the slice's keys) run by the DAG with only models, data sources and sizes swapped
for the tiny ones, so every paper-only setting is read, validated and used by real jobs: the learning rates (5e-07,
1e-05: exponent floats through the frozen config.json), the VLM judge and VLM modality labeller, the sampling,
schedules, CARE and checkpoint settings, and the training launch (`accelerate launch` with one process per GPU the
job holds: two CPU processes over gloo under CUDA_VISIBLE_DEVICES=0,1, standing in for two GPUs). The pilot itself,
unswapped, is dry-run through profiles/slurm and priced by `medbridge plan` (about one GPU-hour).

The paper's hub datasets (MedVLThinker-Eval, MedVLThinker-pmc_vqa) come from a hub-shaped cache made from the
fixtures (tests/test_hub.py): the download_dataset local rule records them, and vqa_items, pmc_label and pmc_balance
read them offline (HF_HUB_OFFLINE=1, an empty default HF home), as on compute nodes without network.

Swapped, and why: hub models -> tiny models made here (no network, no GPU); MedMNIST download -> the synthetic twin;
the hub's VQA datasets -> the fixtures in the hub cache's layout; sizes (items, samples, steps, tokens, pixel bounds)
-> tiny ones; DeepSpeed ZeRO-3 -> plain data parallel (config/accelerate/ddp.yaml; DeepSpeed needs GPUs); bf16 ->
float32 and TRL's colocated vLLM rollouts -> HF generate (CPU); the vLLM backend -> HF when vllm is not installed.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from medbridge.config import ConfigLoader, validate_config

from .conftest import ROOT
from .test_hub import COMMIT, fixture_dataset_cache

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
# base's scoring job (every eval set of base, one judge load) and the `ours` model (PMC-VQA labelling + GRPO)
TARGETS = ["results/paper-smoke/metrics/base", "results/paper-smoke/models/ours"]


def load(name: str) -> dict:
    return yaml.load((ROOT / "config" / name).read_text(), ConfigLoader)


def paper_smoke_config() -> dict:
    """The pilot (config/pilot.yaml: the paper's settings on a thin slice) with CPU stand-ins."""
    pilot, tiny = load("pilot.yaml"), validate_config(load("config.yaml"))  # tiny: its schema defaults filled
    cfg = copy.deepcopy(pilot)
    cfg["run_name"] = "paper-smoke"
    cfg.pop("hub_cache")  # no hub models left to fetch; the test points it at its hub-shaped dataset cache
    # data: the synthetic twin of the pilot's dataset at the tiny size
    cfg["data"] = {
        **tiny["data"],
        "datasets": pilot["data"]["datasets"],
        "synthetic": {"n_train": 24, "n_val": 8, "n_test": 16, "noise": 0.35},
    }
    cfg["mcq"].update(per_class=2, train_per_class=4)
    # models: every role the targets need, as the DAG makes it here; the paper's hub sft becomes a trained one
    cfg["tiny_model"] = tiny["tiny_model"]
    cfg["models"] = {
        "base": {"source": "tiny"},
        "judge": {"source": "tiny"},
        "sft": {"source": "sft", "init": "base"},
        "ours": pilot["models"]["ours"],
    }
    ev = cfg["evaluate"]
    ev.update(models=["base"], n_samples=2, k=[1, 2], max_new_tokens=12, batch_size=8, shard_size=8, dtype="float32")
    ev.pop("min_pixels"), ev.pop("max_pixels")
    if ev["backend"] == "vllm" and importlib.util.find_spec("vllm") is None:
        ev["backend"] = "hf"
    cfg["probe"].update(device="cpu")
    train = cfg["train"]
    train.update(device="cpu", accelerate_config="config/accelerate/ddp.yaml")
    train["sft"].update(datasets=pilot["data"]["datasets"], max_steps=4, save_steps=2, batch_size=2)
    train["grpo"].update(num_generations=4, batch_size=4, max_completion_length=12, use_vllm=False)  # 2 steps
    train["grpo"].pop("max_pixels")
    vqa = cfg["vqa"]
    vqa.update(fixture=tiny["vqa"]["fixture"], max_items=4)  # fixture: the data of the hub-shaped cache
    vqa["pmc"].update(max_new_tokens=8)  # the labeller runs where the backend finds a device
    cfg["recipe"]["k"] = 2
    return validate_config(cfg)


def test_the_paper_settings_run_end_to_end(tmp_path):
    cfg = paper_smoke_config()
    assert cfg["train"]["grpo"]["lr"] == 5e-7 and cfg["train"]["sft"]["lr"] == 1e-5
    assert cfg["evaluate"]["judge"] == "vlm" and cfg["vqa"]["pmc"]["labeller"] == "vlm"
    assert cfg["vqa"]["source"] == "medvlthinker"  # the paper's: MedVLThinker-Eval and MedVLThinker-pmc_vqa
    cfg["hub_cache"] = str(fixture_dataset_cache(tmp_path / "hub", cfg))
    (tmp_path / "paper-smoke.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    os.symlink(ROOT / "config", tmp_path / "config")  # config/accelerate/ddp.yaml, as in the checkout
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "HF_HUB_OFFLINE": "1",
        "CUDA_VISIBLE_DEVICES": "0,1",
        "HF_HOME": str(tmp_path / "empty-hf-home"),
    }
    proc = subprocess.run(
        [
            str(BIN / "snakemake"),
            "--cores",
            "2",
            "--configfile",
            "paper-smoke.yaml",
            "--snakefile",
            str(ROOT / "Snakefile"),
            *TARGETS,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    logs = tmp_path / "results/paper-smoke/logs"
    assert proc.returncode == 0, proc.stderr[-5000:] + "".join(
        f"\n--- {p}\n{p.read_text()[-1500:]}" for p in sorted(logs.rglob("*.log")) if "rror" in p.read_text()
    )
    frozen = json.loads((tmp_path / "results/paper-smoke/config.json").read_text())
    assert frozen["train"]["grpo"]["lr"] == 5e-7  # read back by every verb as the number it is
    metrics = json.loads((tmp_path / TARGETS[0] / "breastmnist.json").read_text())
    assert metrics["judge"] == "vlm"  # scored by the VLM judge (the tiny `judge` role)
    # evaluate.job_hours: generation ran as generate_part jobs (stand-ins are small: one part per model), assembled
    parts = sorted(p.relative_to(logs / "generate_part").as_posix() for p in (logs / "generate_part").rglob("*.log"))
    receipt = json.loads((tmp_path / "results/paper-smoke/shards/generations/base/parts/1-of-1.json").read_text())
    assert "base/1-of-1.log" in parts and receipt["part"] == "1-of-1" and receipt["shards"]
    for model in ("sft", "ours"):  # both trained through `accelerate launch`, 2 processes, the paper's lr
        log = (logs / "models" / f"{model}.log").read_text()
        assert "accelerate.commands.launch" in log and "--num_processes 2" in log, log[-2000:]
        assert (tmp_path / "results/paper-smoke/models" / model / "training_log.csv").exists()
    summary = json.loads(
        (tmp_path / "results/paper-smoke/vqa/pmc_vqa_balanced/modality_labels.summary.json").read_text()
    )
    assert summary["labeller"] == "vlm" and sum(summary["counts"].values()) > 0  # the judge labelled the pool
    # every hub dataset fetched once by the local rule, then read from the cache's snapshot by the jobs
    run = tmp_path / "results/paper-smoke"
    for repo in ("UCSC-VLAA--MedVLThinker-Eval", "UCSC-VLAA--MedVLThinker-pmc_vqa"):
        assert json.loads((run / "hub/datasets" / f"{repo}.json").read_text())["commit"] == COMMIT
    assert summary["source"].startswith(f"hub:UCSC-VLAA/MedVLThinker-pmc_vqa@{COMMIT}")
    assert summary["n_labelled"] == 20 and summary["shards"]["n"] == 3  # the pilot's 20 questions, shards of 8
    assert summary["shards"]["folder"].endswith("shards/pmc_label")
    for bench in ("pmc_vqa",):
        skipped = json.loads((run / "vqa" / bench / "skipped.json").read_text())
        assert skipped["source"].startswith(f"hub:UCSC-VLAA/MedVLThinker-Eval@{COMMIT}") and skipped["n_items"] > 0
    balance = json.loads((run / "vqa/pmc_vqa_balanced/balance.json").read_text())
    assert balance["n_items"] == 8 and COMMIT in balance["source"]
    assert not (tmp_path / "empty-hf-home/hub").exists()  # nothing reached for the default cache


# Keys in which the pilot may differ from the paper (its slice); every other value must be the paper's.
PILOT_SLICE = {
    "run_name",
    "data.datasets",
    "mcq.per_class",
    "mcq.train_per_class",
    "evaluate.models",
    "train.grpo.max_steps",
    "train.grpo.save_steps",
    "rq3",
    "vqa.max_items",
    "vqa.models",
    "vqa.pmc.subset_size",
    "vqa.pmc.pool_size",
    "vqa.pmc.batch_size",
    "vqa.pmc.shard_size",
}
PILOT_SUBSETS = {"models", "vqa.benchmarks", "vqa.reported_rows"}  # the pilot keeps some of the paper's, unchanged


def flat(cfg: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key not in PILOT_SLICE | PILOT_SUBSETS:
            out |= flat(v, key + ".")
        else:
            out[key] = v
    return out


def test_the_pilot_is_the_paper_on_a_thin_slice_of_about_one_gpu_hour(tmp_path):
    """config/pilot.yaml: the paper's values everywhere but the slice (its models, benchmarks and reported rows a
    subset of the paper's, unchanged); `medbridge plan` prices it at about a GPU-hour; the real profile schedules
    every GPU rule of the paper for it, on GPUs, and its downloads as local rules."""
    paper, pilot = validate_config(load("paper.yaml")), validate_config(load("pilot.yaml"))  # the values each runs
    p, q = flat(paper), flat(pilot)
    for key in (set(p) | set(q)) - PILOT_SLICE - PILOT_SUBSETS:
        assert p.get(key) == q.get(key), f"pilot.yaml departs from paper.yaml at {key}: {q.get(key)!r}"
    assert all(paper["models"][r] == spec for r, spec in pilot["models"].items())
    assert all(b in paper["vqa"]["benchmarks"] for b in pilot["vqa"]["benchmarks"])
    assert pilot["vqa"]["reported_rows"].items() <= paper["vqa"]["reported_rows"].items()
    assert len(pilot["data"]["datasets"]) == 1 and len(pilot["vqa"]["benchmarks"]) == 1
    assert pilot["train"]["grpo"]["max_steps"] == 2 and pilot["vqa"]["pmc"]["pool_size"] == 20

    plan = tmp_path / "plan.json"
    proc = subprocess.run(
        [str(BIN / "medbridge"), "plan", "--config", str(ROOT / "config/pilot.yaml"), "--json", str(plan)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(plan.read_text())
    assert {r["rule"] for r in result["rows"]} == {"generate_part", "score", "features", "grpo_model", "pmc_label"}
    assert 0.3 <= result["total_gpu_hours"] <= 2  # about a GPU-hour

    shim = tmp_path / "bin"  # an `apptainer` that answers the dry run's version check (none is installed here)
    shim.mkdir()
    (shim / "apptainer").write_text("#!/bin/sh\necho 'apptainer version 1.4.0'\n")
    (shim / "apptainer").chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}:{BIN}:{os.environ['PATH']}"}
    image = "container_image=docker://example.org/medbridge@sha256:" + "0" * 64  # the template is refused
    proc = subprocess.run(
        [
            str(BIN / "snakemake"),
            "--profile",
            "profiles/slurm",
            "--configfile",
            "config/pilot.yaml",
            "-n",
            "--cores",
            "1024",
            "--config",
            image,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for rule in (
        "generate_part",
        "generate",
        "score",
        "features",
        "grpo_model",
        "pmc_label",
        "download_model",
        "download_dataset",
        "medmnist_npz",
        "medmnist_check",
        "vqa_items",
        "pmc_balance",
    ):
        assert re.search(rf"^rule {rule}:", proc.stdout, re.M), rule
    gpu = re.findall(r"^rule (\w+):(?:\n    .*)*?\n    resources: .*slurm_partition=gpu.*$", proc.stdout, re.M)
    assert set(gpu) == {"generate_part", "score", "features", "grpo_model", "pmc_label"}, gpu
