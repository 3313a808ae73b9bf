"""Multi-GPU training through `accelerate launch`, only when the config asks for it.

With `train.accelerate_config` set (the paper profile: config/accelerate/zero3.yaml, DeepSpeed ZeRO-3),
`medbridge sft|grpo` re-runs itself as `accelerate launch --config_file <file> --num_processes <GPUs held>
--main_process_port <free port> -m medbridge.cli <same arguments>`; the launched processes see LOCAL_RANK and train.
Without it (the tiny profile) they train in-process. The process count follows the job's allocation (SLURM's
CUDA_VISIBLE_DEVICES), the port is one the OS reports free (two jobs on one node must not both take 29500), and the
job's cores are split over the processes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from medbridge import MedbridgeError


def gpus_held() -> int:
    """GPUs this job may use: CUDA_VISIBLE_DEVICES as SLURM sets it for the allocation (also for GPUs it only
    schedules, as the local test cluster's); else SLURM's count; else what torch sees."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if os.environ.get("SLURM_GPUS_ON_NODE", "").isdigit():
        return int(os.environ["SLURM_GPUS_ON_NODE"])
    import torch

    return torch.cuda.device_count()


def cores_held() -> int:
    """Cores this process may run on (the job's CPU binding under SLURM)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def free_port() -> int:
    """A TCP port no process on this node listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _distributed_type(config_file: str) -> str:
    import yaml

    return str((yaml.safe_load(Path(config_file).read_text()) or {}).get("distributed_type", "NO")).upper()


def launch_command(
    cfg: dict, argv: list[str], gpus: int | None = None, port: int | None = None, cores: int | None = None
) -> list[str] | None:
    """The `accelerate launch` command to run instead of training here, or None to train in this process."""
    config_file = cfg["train"].get("accelerate_config")
    if not config_file or "LOCAL_RANK" in os.environ:  # not configured, or already a launched worker
        return None
    if not Path(config_file).is_file():
        raise MedbridgeError(
            f"train.accelerate_config names {config_file}, which does not exist; point it at an accelerate config "
            "file (e.g. config/accelerate/zero3.yaml) or remove the key to train in one process"
        )
    n = gpus_held() if gpus is None else gpus
    kind = _distributed_type(config_file)
    if n < 1 and kind == "DEEPSPEED":
        raise MedbridgeError(
            f"train.accelerate_config {config_file} is DeepSpeed, but this job holds no GPU; run it on a GPU "
            "(profiles/slurm gives sft_model/grpo_model their GPUs) or remove the key to train in one process"
        )
    if n < 2 and kind != "DEEPSPEED":  # data parallel over one process is training here
        return None
    per_process = max(1, (cores_held() if cores is None else cores) // n)
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        config_file,
        "--num_processes",
        str(n),
        "--num_machines",
        "1",
        "--main_process_port",
        str(port or free_port()),
        "--num_cpu_threads_per_process",
        str(per_process),
        "-m",
        "medbridge.cli",
        *argv,
    ]


def relaunch(cfg: dict, argv: list[str]) -> bool:
    """Run the launched training and return True, or return False when this process should train itself."""
    cmd = launch_command(cfg, argv)
    if cmd is None:
        return False
    print("launching:", " ".join(cmd), flush=True)
    rc = subprocess.run(cmd, check=False).returncode
    if rc != 0:
        raise MedbridgeError(f"`accelerate launch` training exited with status {rc}; see the log above")
    return True
