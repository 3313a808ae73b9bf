import copy
import json
import subprocess
import sys

import pytest
import yaml

from medbridge import MedbridgeError
from medbridge.config import load_config, validate_config

from .conftest import ROOT


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_shipped_configs_are_valid(name):
    cfg = load_config(ROOT / "config" / name)
    assert cfg["evaluate"]["k"]


def mutate(cfg, path, value):
    cfg = copy.deepcopy(cfg)
    node = cfg
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return cfg


@pytest.mark.parametrize(
    "path,value,expect",
    [
        (("evaluate", "n_samplez"), 3, "unknown key(s) ['n_samplez']"),
        (("evaluate", "n_samples"), "many", "should be of type"),
        (("evaluate", "backend"), "ollama", "choose one of ['hf', 'vllm']"),
        (("data", "datasets"), ["mnist"], "is not allowed"),
        (("run_name",), KeyError, "'run_name' is a required property"),
        (("evaluate", "models"), ["base", "ghost"], "unknown model role 'ghost'"),
        (("evaluate", "k"), [1, 64], "Pass@k needs n >= k"),
        (("recipe", "tau"), 1.5, "recipe.tau"),
        (("models", "sft", "init"), "nobody", "init 'nobody' is not a defined role"),
    ],
)
def test_bad_config_is_rejected_with_the_key_named(tiny_cfg, path, value, expect):
    with pytest.raises(MedbridgeError) as err:
        validate_config(mutate(tiny_cfg, path, value))
    assert expect in str(err.value)


def test_cli_exits_nonzero_with_message(tmp_path, tiny_cfg):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(mutate(tiny_cfg, ("seed",), -1)))
    proc = subprocess.run([sys.executable, "-m", "medbridge.cli", "validate-config", "--config", str(bad)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2
    assert "seed" in proc.stderr and "minimum" in proc.stderr


def test_overrides_merge_and_validate(tmp_path):
    out = tmp_path / "frozen.json"
    proc = subprocess.run([sys.executable, "-m", "medbridge.cli", "freeze-config", "--config",
                           str(ROOT / "config" / "config.yaml"), "--set", '{"seed": 7}', "--out", str(out)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["seed"] == 7
