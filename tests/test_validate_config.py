"""One validation entry point (issue #24 item 2): `medbridge validate-config` and the DAG accept and refuse exactly
the same configs, cross-field checks included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from medbridge import MedbridgeError
from medbridge.config import validate_config

from .conftest import ROOT

BIN = Path(sys.executable).parent


def tiny() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def recipe_k_not_sampled(cfg):
    cfg["recipe"]["k"] = 3  # schema-valid, but the metrics carry Pass@k only for evaluate.k


def rq3_target_not_a_dataset(cfg):
    cfg["data"]["datasets"] = [d for d in cfg["data"]["datasets"] if d != "pneumoniamnist"]


def vqa_role_unknown(cfg):
    cfg["vqa"]["models"] = [*cfg["vqa"]["models"], "nobody"]


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (recipe_k_not_sampled, "recipe.k = 3 is not in evaluate.k"),
        (rq3_target_not_a_dataset, "evaluates on 'pneumoniamnist', which is not in data.datasets"),
        (vqa_role_unknown, "vqa.models names unknown model role 'nobody'"),
    ],
)
def test_the_verb_and_the_dag_refuse_the_same_cross_field_error(tmp_path, break_it, message):
    cfg = tiny()
    validate_config(tiny())  # the default passes both
    break_it(cfg)
    with pytest.raises(MedbridgeError, match=message):
        validate_config(cfg)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    verb = subprocess.run(
        [str(BIN / "medbridge"), "validate-config", "--config", str(bad)], capture_output=True, text=True, timeout=300
    )
    assert verb.returncode != 0 and message in verb.stderr, verb.stderr[-2000:]
    dag = subprocess.run(
        [str(BIN / "snakemake"), "-n", "--configfile", str(bad), "--snakefile", str(ROOT / "Snakefile")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert dag.returncode != 0 and message in dag.stdout + dag.stderr, (dag.stdout + dag.stderr)[-2000:]
