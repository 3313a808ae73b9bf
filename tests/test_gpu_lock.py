"""Opt-in (`make test-gpu-lock`; ~11 GB of disk and minutes the first time): the GPU image's own checks, run against
the GPU lock installed here without a GPU.

The GPU image cannot be built here (its CUDA base is on a registry this machine does not reach), so its steps are
checked one by one: the lock installs with `--require-hashes --no-deps` into a fresh venv (as the image's `uv pip
install` does), and the checks of the Dockerfile's last RUN (`medbridge --version`, `medbridge env --check --lock
envs/requirements-gpu.txt`, the import line) run in it on exactly the files the image copies (tests/test_image_files).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT
from .test_image_files import image_tree

GPU_LOCK = "envs/requirements-gpu.txt"
VENV = Path(os.environ.get("MEDBRIDGE_GPU_VENV", "/var/tmp/medbridge-gpu-venv"))

pytestmark = pytest.mark.skipif(
    os.environ.get("MEDBRIDGE_TEST_GPU_LOCK") != "1", reason="opt-in: make test-gpu-lock (~11 GB, minutes)"
)


@pytest.fixture(scope="module")
def gpu_python() -> Path:
    """The GPU lock in a venv of its own (kept between runs; reinstalled when the lock changes)."""
    import hashlib

    stamp = VENV / f".lock-{hashlib.sha256((ROOT / GPU_LOCK).read_bytes()).hexdigest()[:16]}"
    if not stamp.exists():
        if not (VENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [
                str(VENV / "bin/python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--require-hashes",
                "--no-deps",
                "-r",
                str(ROOT / GPU_LOCK),
            ],
            check=True,
            timeout=3600,
        )
        stamp.touch()
    return VENV / "bin" / "python"


def test_the_gpu_images_checks_pass_on_its_lock(gpu_python, tmp_path):
    tree = image_tree(ROOT, tmp_path, {"LOCK": GPU_LOCK})
    # the image sets these (containers/Dockerfile); no GPU here, so no driver to check
    env = {
        **os.environ,
        "PYTHONPATH": str(tree / "src"),
        "MEDBRIDGE_IMAGE_LOCK": str(tree / GPU_LOCK),
        "MEDBRIDGE_IMAGE_CUDA": "13.0",
        "CUDA_VISIBLE_DEVICES": "",
    }

    def run(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(gpu_python), *args], env=env, cwd=tree, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc

    assert run("-m", "medbridge.cli", "--version").stdout.strip() == "medbridge 0.1.0"
    check = run("-m", "medbridge.cli", "env", "--check", "--lock", GPU_LOCK)
    assert "matches envs/requirements-gpu.txt" in check.stdout
    line = run(
        "-c",
        "import torch, torchvision, transformers, vllm, trl, deepspeed; "
        "print(torch.__version__, torch.version.cuda, vllm.__version__, trl.__version__)",
    ).stdout
    torch_v, cuda, vllm_v, trl_v = line.splitlines()[-1].split()  # the last line: libraries may log before it
    from medbridge.environment import read_lock

    _, pins = read_lock(ROOT / GPU_LOCK)
    assert torch_v.split("+")[0] == pins["torch"] and cuda == "13.0"
    assert vllm_v == pins["vllm"] and trl_v == pins["trl"]
