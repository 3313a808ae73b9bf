"""Multi-GPU training through `accelerate launch`, only when the config asks for it.

With `train.accelerate_config` set (the paper profile: config/accelerate/zero3_4gpu.yaml, DeepSpeed ZeRO-3 on a
4-GPU node), `medbridge sft|grpo` re-runs itself as `accelerate launch --config_file <file> -m medbridge.cli <same
arguments>`; the launched processes see LOCAL_RANK and train. Without it (the tiny profile) they train in-process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from medbridge import MedbridgeError


def launch_command(cfg: dict, argv: list[str]) -> list[str] | None:
    """The `accelerate launch` command to run instead of training here, or None to train in this process."""
    config_file = cfg.get("train", {}).get("accelerate_config")
    if not config_file or "LOCAL_RANK" in os.environ:  # not configured, or already a launched worker
        return None
    if not Path(config_file).is_file():
        raise MedbridgeError(
            f"train.accelerate_config names {config_file}, which does not exist; point it at an accelerate config "
            "file (e.g. config/accelerate/zero3_4gpu.yaml) or remove the key to train in one process"
        )
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config_file,
            "-m", "medbridge.cli", *argv]  # fmt: skip


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
