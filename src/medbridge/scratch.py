"""Caches of a cluster job on node-local scratch, never on the shared checkout.

Under `apptainer --home <checkout>` every library's default cache (`~/.cache/...`) is the checkout on the shared file
system, written by many jobs at once: Triton kernels, vLLM's torch.compile cache, FlashInfer's JIT builds, DeepSpeed's
op builds (torch_extensions), Inductor, the datasets library's Arrow cache. In a job (SLURM, or a container) each of
those points at a folder of its own under `$TMPDIR` (node-local on most clusters; /tmp where it is unset or not
visible in the container), removed when the job ends. Only the hub cache (`hub_cache`, medbridge.hub) stays shared:
it is filled once on the login node and read offline. A variable the user already set is left as it is.
"""

from __future__ import annotations

import atexit
import os
import shutil
from pathlib import Path

# variable -> sub-folder; names as the libraries read them (triton/knobs.py, vllm/envs.py, flashinfer/jit/env.py,
# torch/_inductor/runtime/cache_dir_utils.py, datasets/config.py; XDG_CACHE_HOME covers torch_extensions and the rest)
CACHE_VARS = {
    "XDG_CACHE_HOME": "xdg",
    "TRITON_HOME": "triton-home",
    "TRITON_CACHE_DIR": "triton",
    "VLLM_CACHE_ROOT": "vllm",
    "FLASHINFER_WORKSPACE_BASE": "flashinfer",
    "TORCHINDUCTOR_CACHE_DIR": "torchinductor",
    "TORCH_EXTENSIONS_DIR": "torch_extensions",
    "CUDA_CACHE_PATH": "nv-compute-cache",
    "HF_DATASETS_CACHE": "hf-datasets",
    "MPLCONFIGDIR": "matplotlib",
}
OWNER = "MEDBRIDGE_SCRATCH_OWNER"  # pid of the process that made the folder (a launched worker inherits it)


def in_job(environ=os.environ) -> bool:
    return any(environ.get(v) for v in ("SLURM_JOB_ID", "APPTAINER_CONTAINER", "SINGULARITY_CONTAINER"))


def scratch_root(environ=os.environ) -> Path:
    tmp = environ.get("TMPDIR", "")
    base = Path(tmp) if tmp and os.path.isdir(tmp) and os.access(tmp, os.W_OK) else Path("/tmp")
    return base / f"medbridge-job-{environ.get('SLURM_JOB_ID') or os.getpid()}"


def use_job_scratch(environ=os.environ) -> Path | None:
    """In a job: point every unset cache variable at this job's scratch folder (made here, removed at exit by the
    process that made it); the folder, or None outside a job."""
    if not in_job(environ):
        return None
    root = scratch_root(environ)
    for var, sub in CACHE_VARS.items():
        if not environ.get(var):
            environ[var] = str(root / sub)
            os.makedirs(environ[var], exist_ok=True)
    if OWNER not in environ:
        environ[OWNER] = str(os.getpid())
        if environ is os.environ:
            atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root
