#!/usr/bin/env bash
# Run by Snakemake (--sdm conda) inside the freshly created envs/medbridge.yaml env, from the workflow's working
# directory: install the GPU lock (hash-checked, a complete closure: --no-deps) and this checkout (editable, built
# by the lock's setuptools), so `medbridge` resolves in every job with exactly the image's versions.
# MEDBRIDGE_ROOT overrides the checkout's location; MEDBRIDGE_LOCK the lock (e.g. envs/requirements-cpu.txt).
set -euo pipefail
root="${MEDBRIDGE_ROOT:-$PWD}"
python -m pip install --require-hashes --no-deps -r "$root/${MEDBRIDGE_LOCK:-envs/requirements-gpu.txt}"
python -m pip install --no-deps --no-build-isolation -e "$root"
