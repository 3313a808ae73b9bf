#!/usr/bin/env bash
# Create or update the project's virtual environment (.venv) idempotently: reinstalls only when pyproject.toml
# changes. torch/torchvision are asked for first at exact versions (torch 2.14.x + torchvision 0.29.x, the range
# vLLM 0.33 shares), so pip never resolves a plain `torch` to some other multi-GB build.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-test}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), "medbridge needs Python 3.11"' || {
  echo "bootstrap: Python 3.11 is required (found $("$PY" --version 2>&1)); install it or set PYTHON=/path/to/python3.11" >&2
  exit 1
}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=".venv/.medbridge-installed-$(sha256sum pyproject.toml | cut -c1-16)-${EXTRAS}"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
  .venv/bin/python -m pip install --quiet -e ".[${EXTRAS}]"
  rm -f .venv/.medbridge-installed-*
  touch "$stamp"
fi
