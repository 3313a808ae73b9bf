"""Kill a sampling step with SIGKILL at several points, rerun, and get exactly the uninterrupted run's output."""

import json
import signal
import subprocess
import sys
import time

import pytest

from medbridge.data.mcq import make_items
from medbridge.data.medmnist import npz_name
from medbridge.io import write_jsonl


def generate_cmd(cfg_path, items, out):
    return [sys.executable, "-m", "medbridge.cli", "generate", "--config", str(cfg_path), "--model", "base",
            "--items", str(items), "--out", str(out), "--device", "cpu"]  # fmt: skip


@pytest.fixture()
def sampling_job(cfg_with_local_model, synthetic_dir, tmp_path):
    cfg = cfg_with_local_model
    cfg["evaluate"].update(shard_size=1, batch_size=1, max_new_tokens=16)
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    items = tmp_path / "items.jsonl"
    write_jsonl(items, make_items("organamnist", synthetic_dir / npz_name("organamnist", 64), "test", 1, 0)[:6])
    reference = tmp_path / "reference.jsonl"
    subprocess.run(generate_cmd(cfg_path, items, reference), check=True, capture_output=True)
    return cfg_path, items, reference


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_shards", [0, 1, 4])
def test_sigkilled_sampling_resumes_to_identical_output(sampling_job, tmp_path, kill_after_shards):
    cfg_path, items, reference = sampling_job
    out = tmp_path / f"killed-{kill_after_shards}.jsonl"
    shards = tmp_path / f"{out.name}.shards"
    proc = subprocess.Popen(generate_cmd(cfg_path, items, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list(shards.glob("shard-*.jsonl"))) >= kill_after_shards:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()  # the final file never appears half-written
    # a write cut by SIGKILL can leave only a hidden temp file, never a partial shard under its final name
    for shard in shards.glob("shard-*.jsonl") if shards.exists() else []:
        assert len(shard.read_text().splitlines()) == 1  # shard_size 1: complete or absent
    done_before = len(list(shards.glob("shard-*.jsonl"))) if shards.exists() else 0
    subprocess.run(generate_cmd(cfg_path, items, out), check=True, capture_output=True)
    assert out.read_bytes() == reference.read_bytes()
    assert not list(shards.glob(".*.tmp"))  # the rerun removed any temp file the killed attempt left
    assert done_before >= min(kill_after_shards, 6) or kill_after_shards == 0


def train_cmd(verb, cfg_path, init, items, out):
    return [sys.executable, "-m", "medbridge.cli", verb, "--config", str(cfg_path), "--init-model", str(init),
            "--train-items", str(items), "--out", str(out)]  # fmt: skip


def weights(model_dir):
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


@pytest.fixture()
def training_job(cfg_with_local_model, tiny_model_dir, synthetic_dir, tmp_path):
    cfg = cfg_with_local_model
    cfg["train"]["sft"].update(max_steps=12, save_steps=4, batch_size=4, prompts=["eval"], warmup_ratio=0.0)
    cfg["train"]["grpo"].update(max_steps=6, save_steps=2, num_generations=4, batch_size=8, max_completion_length=12)
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    items = tmp_path / "train.jsonl"
    write_jsonl(items, make_items("pneumoniamnist", synthetic_dir / npz_name("pneumoniamnist", 64), "train", 8, 0))
    return cfg_path, items


@pytest.mark.slow
@pytest.mark.parametrize("verb,kill_at_checkpoint", [("sft", 4), ("sft", 8), ("grpo", 2)])
def test_sigkilled_training_resumes_from_its_checkpoint(training_job, tiny_model_dir, tmp_path, verb,
                                                        kill_at_checkpoint):  # fmt: skip
    import torch

    cfg_path, items = training_job
    reference = tmp_path / "reference"
    subprocess.run(train_cmd(verb, cfg_path, tiny_model_dir, items, reference), check=True, capture_output=True)

    out = tmp_path / "killed"
    work = tmp_path / ".killed.work"
    proc = subprocess.Popen(train_cmd(verb, cfg_path, tiny_model_dir, items, out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 300
    checkpoint = work / f"checkpoint-{kill_at_checkpoint}"
    while time.time() < deadline and proc.poll() is None and not (checkpoint / "trainer_state.json").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists(), "the job finished or failed before writing the checkpoint it was to be killed at"
    assert not out.exists()  # no model directory the registry could mistake for a finished one

    rerun = subprocess.run(train_cmd(verb, cfg_path, tiny_model_dir, items, out), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resuming from" in rerun.stdout + rerun.stderr
    log = (out / "training_log.csv").read_text().splitlines()
    assert len(log) - 1 == len((reference / "training_log.csv").read_text().splitlines()) - 1  # every step logged
    a, b = weights(reference), weights(out)
    if verb == "sft":  # SFT resumes exactly: same batches, restored RNG and optimizer state
        worst = max((a[k] - b[k]).abs().max().item() for k in a)
        assert worst == 0, f"resumed SFT weights differ by up to {worst}"
    else:  # GRPO resumes its steps; sampled rollouts after the restart need not repeat bit for bit
        assert a.keys() == b.keys()
    assert not work.exists()  # the work directory is cleaned once the model is saved
