#!/usr/bin/env bash
# Run by Snakemake (--sdm conda) inside the freshly created envs/medbridge.yaml env, from the workflow's working
# directory: install this checkout (its dependencies are already in the env) so `medbridge` resolves in every job.
# Editable, so the env runs the code of the checkout it was made from. MEDBRIDGE_ROOT overrides the location.
set -euo pipefail
python -m pip install --no-deps --no-build-isolation -e "${MEDBRIDGE_ROOT:-$PWD}"
