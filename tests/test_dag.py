"""The Snakemake DAG: dry runs of both configs, and the tiny profile end to end."""

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def snakemake(*args, cwd=ROOT, timeout=1800):
    return subprocess.run([SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("configfile", [None, "config/paper.yaml"])
def test_dry_run_passes(configfile):
    args = ["-n", "--quiet", "rules"] + (["--configfile", configfile] if configfile else [])
    proc = snakemake(*args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_bad_config_stops_the_dag_at_once():
    proc = snakemake("-n", "--config", "evaluate={'backend': 'ollama'}")
    assert proc.returncode != 0
    assert "backend" in proc.stdout + proc.stderr
