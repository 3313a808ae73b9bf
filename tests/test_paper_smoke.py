"""The paper's settings run here: the DAG on config/paper.yaml with only models, data sources and sizes swapped for
the tiny ones, so every paper-only setting is read, validated and used by real jobs: the learning rates (5e-07,
1e-05: exponent floats through the frozen config.json), the VLM judge and VLM modality labeller, the sampling,
schedules, CARE and checkpoint settings, and the training launch (`accelerate launch` with one process per GPU the
job holds: two CPU processes over gloo under CUDA_VISIBLE_DEVICES=0,1, standing in for two GPUs).

The paper's hub datasets (MedVLThinker-Eval, MedVLThinker-pmc_vqa) come from a hub-shaped cache made from the
fixtures (tests/test_hub.py): the download_dataset local rule records them, and vqa_items, pmc_label and pmc_balance
read them offline (HF_HUB_OFFLINE=1, an empty default HF home), as on compute nodes without network.

Swapped, and why: hub models -> tiny models made here (no network, no GPU); MedMNIST download -> the synthetic twin;
the hub's VQA datasets -> the fixtures in the hub cache's layout; sizes (datasets, items, samples, steps, tokens, pixel bounds) -> tiny ones;
DeepSpeed ZeRO-3 -> plain data parallel (config/accelerate/ddp.yaml; DeepSpeed needs GPUs); bf16 -> float32 and TRL's
colocated vLLM rollouts -> HF generate (CPU); the vLLM backend -> HF when vllm is not installed.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
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


def paper_smoke_config() -> dict:
    paper = yaml.load((ROOT / "config" / "paper.yaml").read_text(), ConfigLoader)
    tiny = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg = copy.deepcopy(paper)
    cfg["run_name"] = "paper-smoke"
    cfg.pop("hub_cache")  # no hub models left to fetch; the test points it at its hub-shaped dataset cache
    # data: the synthetic twin at the tiny size, two of the paper's datasets
    cfg["data"] = {**tiny["data"], "datasets": ["organamnist", "octmnist"],
                   "synthetic": {"n_train": 24, "n_val": 8, "n_test": 16, "noise": 0.35}}  # fmt: skip
    cfg["mcq"].update(per_class=2, train_per_class=4)
    # models: every role the targets need, as the DAG makes it here; the paper's hub sft/rl become trained ones
    cfg["tiny_model"] = tiny["tiny_model"]
    cfg["models"] = {"base": {"source": "tiny"}, "judge": {"source": "tiny"},
                     "sft": {"source": "sft", "init": "base"}, "ours": paper["models"]["ours"]}  # fmt: skip
    ev = cfg["evaluate"]
    ev.update(models=["base"], n_samples=2, k=[1, 2], max_new_tokens=12, batch_size=8, shard_size=8, dtype="float32")
    ev.pop("min_pixels"), ev.pop("max_pixels")
    if ev["backend"] == "vllm" and importlib.util.find_spec("vllm") is None:
        ev["backend"] = "hf"
    cfg["probe"].update(device="cpu")
    train = cfg["train"]
    train.update(device="cpu", accelerate_config="config/accelerate/ddp.yaml")
    train["sft"].update(datasets=["organamnist"], max_steps=4, save_steps=2, batch_size=2)
    train["grpo"].update(max_steps=2, save_steps=1, num_generations=4, batch_size=4, max_completion_length=12,
                         use_vllm=False)  # fmt: skip
    train["grpo"].pop("max_pixels")
    cfg["rq3"] = {"train_tasks": ["organamnist"], "inits": ["base"],
                  "pairs": {"in_domain": [["organamnist", "organamnist"]]}}  # fmt: skip
    vqa = cfg["vqa"]
    vqa.update(fixture=tiny["vqa"]["fixture"], max_items=4, models=["base", "ours"],  # fixture: the cache's data
               benchmarks=[b for b in vqa["benchmarks"] if b["name"] in ("pmc_vqa", "vqa_rad")],
               reported_rows={"ours": vqa["reported_rows"]["ours"]})  # fmt: skip
    vqa["pmc"].update(subset_size=8, batch_size=8, max_new_tokens=8)  # the labeller runs where the backend finds a device
    cfg["recipe"]["k"] = 2
    return validate_config(cfg)


def test_the_paper_settings_run_end_to_end(tmp_path):
    cfg = paper_smoke_config()
    assert cfg["train"]["grpo"]["lr"] == 5e-7 and cfg["train"]["sft"]["lr"] == 1e-5
    assert cfg["evaluate"]["judge"] == "vlm" and cfg["vqa"]["pmc"]["labeller"] == "vlm"
    assert cfg["vqa"]["source"] == "medvlthinker" and cfg["vqa"]["pmc"]["train"]["id"] == "UCSC-VLAA/MedVLThinker-pmc_vqa"
    cfg["hub_cache"] = str(fixture_dataset_cache(tmp_path / "hub", cfg))
    (tmp_path / "paper-smoke.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    os.symlink(ROOT / "config", tmp_path / "config")  # config/accelerate/ddp.yaml, as in the checkout
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "0,1",
           "HF_HOME": str(tmp_path / "empty-hf-home")}  # fmt: skip
    proc = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "2", "--configfile", "paper-smoke.yaml", "--snakefile",
         str(ROOT / "Snakefile"), *TARGETS],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    logs = tmp_path / "results/paper-smoke/logs"
    assert proc.returncode == 0, proc.stderr[-5000:] + "".join(
        f"\n--- {p}\n{p.read_text()[-1500:]}" for p in sorted(logs.rglob("*.log")) if "rror" in p.read_text()
    )
    frozen = json.loads((tmp_path / "results/paper-smoke/config.json").read_text())
    assert frozen["train"]["grpo"]["lr"] == 5e-7  # read back by every verb as the number it is
    metrics = json.loads((tmp_path / TARGETS[0] / "organamnist.json").read_text())
    assert metrics["judge"] == "vlm"  # scored by the VLM judge (the tiny `judge` role)
    for model in ("sft", "ours"):  # both trained through `accelerate launch`, 2 processes, the paper's lr
        log = (logs / "models" / f"{model}.log").read_text()
        assert "accelerate.commands.launch" in log and "--num_processes 2" in log, log[-2000:]
        assert (tmp_path / "results/paper-smoke/models" / model / "training_log.csv").exists()
    summary = json.loads((tmp_path / "results/paper-smoke/vqa/pmc_vqa_balanced/modality_labels.summary.json")
                         .read_text())  # fmt: skip
    assert summary["labeller"] == "vlm" and sum(summary["counts"].values()) > 0  # the judge labelled the pool
    # every hub dataset fetched once by the local rule, then read from the cache's snapshot by the jobs
    run = tmp_path / "results/paper-smoke"
    for repo in ("UCSC-VLAA--MedVLThinker-Eval", "UCSC-VLAA--MedVLThinker-pmc_vqa"):
        assert json.loads((run / "hub/datasets" / f"{repo}.json").read_text())["commit"] == COMMIT
    assert summary["source"].startswith(f"hub:UCSC-VLAA/MedVLThinker-pmc_vqa@{COMMIT}")
    assert summary["shards"]["n"] >= 1 and summary["shards"]["folder"].endswith("shards/pmc_label")
    for bench in ("pmc_vqa", "vqa_rad"):
        skipped = json.loads((run / "vqa" / bench / "skipped.json").read_text())
        assert skipped["source"].startswith(f"hub:UCSC-VLAA/MedVLThinker-Eval@{COMMIT}") and skipped["n_items"] > 0
    balance = json.loads((run / "vqa/pmc_vqa_balanced/balance.json").read_text())
    assert balance["n_items"] == 8 and COMMIT in balance["source"]
    assert not (tmp_path / "empty-hf-home/hub").exists()  # nothing reached for the default cache
