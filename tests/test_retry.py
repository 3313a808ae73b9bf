"""A training job killed mid-run (a preemption, a time limit) is retried by Snakemake and resumes from its last
checkpoint: the work directory beside the output survives Snakemake's cleanup of the failed job's outputs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def training_pids(cwd: Path) -> list[int]:
    """PIDs of `medbridge grpo` processes this test's Snakemake started (working directory cwd)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            if b"grpo" in cmd and b"--init-model" in cmd and (proc / "cwd").resolve() == cwd.resolve():
                pids.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return pids


def test_killed_training_resumes_on_snakemakes_retry(tmp_path):
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["run_name"] = "retry"
    cfg["data"]["synthetic"] = {"n_train": 24, "n_val": 8, "n_test": 16, "noise": 0.35}
    cfg["train"]["grpo"].update(max_steps=8, save_steps=2)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    model = tmp_path / "results/retry/models/rq3-base-organamnist"
    work = model.parent / f".{model.name}.work"
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    snakemake = subprocess.Popen(
        [
            str(BIN / "snakemake"),
            "--cores",
            "1",
            "--retries",
            "1",
            "--configfile",
            "config.yaml",
            "--snakefile",
            str(ROOT / "Snakefile"),
            str(model.relative_to(tmp_path)),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 600
        while not (work / "checkpoint-2").is_dir() and snakemake.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert (work / "checkpoint-2").is_dir(), "no checkpoint appeared"
        for pid in training_pids(tmp_path):  # the first attempt dies as a preempted job would
            os.kill(pid, 9)
        out, _ = snakemake.communicate(timeout=600)
    finally:
        if snakemake.poll() is None:
            snakemake.kill()
    assert snakemake.returncode == 0, out[-4000:]
    assert "attempt" in out or "Trying to restart job" in out, out[-4000:]  # Snakemake's retry, not a clean run
    log = (tmp_path / "results/retry/logs/models/rq3-base-organamnist.log").read_text()
    assert "resuming from" in log and "checkpoint-" in log, log[-3000:]
    rows = (model / "training_log.csv").read_text().splitlines()
    assert len(rows) - 1 == 8  # every step logged once: the resumed run carried on, it did not start over
    assert not work.exists()  # cleaned once the model is saved
