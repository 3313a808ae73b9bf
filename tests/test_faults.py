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
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # ... nor do temp files linger visibly as outputs
    done_before = len(list(shards.glob("shard-*.jsonl"))) if shards.exists() else 0
    subprocess.run(generate_cmd(cfg_path, items, out), check=True, capture_output=True)
    assert out.read_bytes() == reference.read_bytes()
    assert done_before >= min(kill_after_shards, 6) or kill_after_shards == 0
