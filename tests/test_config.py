import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from medbridge import MedbridgeError
from medbridge.config import load_config, validate_config

from .conftest import ROOT


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml", "small.yaml"])
def test_shipped_configs_are_valid(name):
    cfg = load_config(ROOT / "config" / name)
    assert cfg["evaluate"]["k"]


def _flat(cfg, prefix=""):
    """{dotted key: value} of a config's leaves (a list is a leaf)."""
    out = {}
    for key, value in cfg.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# What config/small.yaml changes in the tiny profile (benchmarks/claims_seeds.py, docs/TRAINING.md): sizes only
SMALL_CHANGES = {
    "run_name",
    "data.synthetic.n_test",
    "mcq.per_class",
    "train.sft.epochs",
    "train.grpo.max_steps",
    "train.grpo.batch_size",
}


def test_small_profile_is_the_tiny_one_with_sizes_changed():
    """config/small.yaml is a whole config (a --configfile replaces the default): the tiny profile's keys (plus a
    changed one the tiny profile leaves at its schema default), the same DAG and code paths, and values, filled with
    the schema's defaults, changed only where the small profile says so, each line marked `small:`."""
    raw = {n: _flat(yaml.safe_load((ROOT / "config" / n).read_text())) for n in ("config.yaml", "small.yaml")}
    assert set(raw["config.yaml"]) <= set(raw["small.yaml"]) <= set(raw["config.yaml"]) | SMALL_CHANGES
    tiny, small = (_flat(load_config(ROOT / "config" / n)) for n in ("config.yaml", "small.yaml"))
    assert set(tiny) == set(small)
    assert {k for k in tiny if tiny[k] != small[k]} == SMALL_CHANGES
    text = (ROOT / "config" / "small.yaml").read_text()
    for key in SMALL_CHANGES - {"run_name"}:
        leaf = key.rsplit(".", 1)[-1]
        assert any(f"{leaf}:" in line and "small:" in line for line in text.splitlines()), key


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
    proc = subprocess.run(
        [sys.executable, "-m", "medbridge.cli", "validate-config", "--config", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "seed" in proc.stderr and "minimum" in proc.stderr


def test_overrides_merge_and_validate(tmp_path):
    out = tmp_path / "frozen.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "medbridge.cli",
            "freeze-config",
            "--config",
            str(ROOT / "config" / "config.yaml"),
            "--set",
            '{"seed": 7}',
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["seed"] == 7


def test_exponent_floats_in_a_user_yaml_are_numbers(tmp_path):
    """YAML 1.1 reads `3e-5` as a string; a user's config must get the number (it failed validation before)."""
    text = (ROOT / "config" / "config.yaml").read_text()
    user = tmp_path / "user.yaml"
    user.write_text(re.sub(r"(\n  grpo:.*(?:\n    .*)*?\n    lr: )[^\s#]+", r"\g<1>3e-5", text))
    assert "    lr: 3e-5" in user.read_text()
    cfg = load_config(user)
    assert cfg["train"]["grpo"]["lr"] == 3e-5 and isinstance(cfg["train"]["grpo"]["lr"], float)


def test_frozen_config_round_trips_the_paper_floats(tmp_path):
    """freeze_config writes JSON (`5e-07`); every verb reads it back with the same numbers (JSON, not YAML 1.1)."""
    from medbridge.config import freeze_config

    paper = load_config(ROOT / "config" / "paper.yaml")
    frozen = freeze_config(paper, tmp_path / "config.json")
    assert "5e-07" in frozen.read_text()
    back = load_config(frozen)
    assert back == paper and back["train"]["grpo"]["lr"] == 5e-7 and back["train"]["sft"]["lr"] == 1e-5


def test_snakemake_configfile_with_exponent_floats(tmp_path, tiny_cfg):
    """Snakemake parses --configfile itself (YAML 1.1): the Snakefile turns '3e-5' into 3e-5 where the schema wants
    a number, and leaves other strings alone."""
    from medbridge.config import coerce_exponent_floats

    cfg = mutate(mutate(tiny_cfg, ("train", "grpo", "lr"), "3e-5"), ("run_name",), "1e5")
    coerce_exponent_floats(cfg)
    assert cfg["train"]["grpo"]["lr"] == 3e-5 and cfg["run_name"] == "1e5"
    validate_config(cfg)
    user = tmp_path / "user.yaml"
    user.write_text((ROOT / "config" / "config.yaml").read_text().replace("lr: 1.0e-4", "lr: 3e-5"))
    snakemake = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run(
        [str(snakemake), "--list-rules", "--configfile", str(user)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "grpo_model" in proc.stdout


def test_one_nested_key_from_the_command_line_is_typed_by_the_schema(tiny_cfg):
    """`--config set="..."`: each dotted key changes that key only, its value typed as the schema wants it."""
    from medbridge.config import apply_set, coerce_cli_types

    text = "evaluate.n_samples=4 evaluate.k=[1,2,4] train.grpo.lr=3e-5 run_name=123 models.base.dtype=float32"
    cfg = apply_set(copy.deepcopy(tiny_cfg), text + " 'vqa.pmc.categories=[CT, none]'")
    ev = cfg["evaluate"]
    assert ev["n_samples"] == 4 and ev["k"] == [1, 2, 4] and ev["temperature"] == tiny_cfg["evaluate"]["temperature"]
    assert cfg["train"]["grpo"]["lr"] == 3e-5 and cfg["run_name"] == "123"  # a string where the schema wants one
    assert cfg["models"]["base"] == {"source": "tiny", "dtype": "float32"}
    assert cfg["vqa"]["pmc"]["categories"] == ["CT", "none"]
    validate_config(mutate(cfg, ("recipe", "k"), 4))
    for bad, named in [
        ("evaluate.n_sample=4", "'evaluate.n_sample'"),
        ("evaluat.n_samples=4", "'evaluat'"),
        ("seed", "not key=value"),
    ]:
        with pytest.raises(MedbridgeError, match=re.escape(named)):
            apply_set(copy.deepcopy(tiny_cfg), bad)
    # Snakemake's `--config 'evaluate={"n_samples": 4}'` hands nested values over as strings
    nested = mutate(mutate(tiny_cfg, ("evaluate", "n_samples"), "16"), ("evaluate", "dtype"), "float32")
    nested = mutate(mutate(nested, ("train", "sft", "lora"), "false"), ("evaluate", "temperature"), "0.5")
    coerce_cli_types(nested)
    assert (nested["evaluate"]["n_samples"], nested["evaluate"]["temperature"]) == (16, 0.5)
    assert nested["train"]["sft"]["lora"] is False


def test_snakemake_answers_a_bad_override_in_one_line():
    snakemake = Path(sys.executable).with_name("snakemake")
    bad = "set=evaluate.n_samples=4 evaluate.backend=ollama"
    proc = subprocess.run(
        [str(snakemake), "--list-rules", "--config", bad], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode != 0
    (line,) = [ln for ln in proc.stderr.splitlines() if "medbridge: config:" in ln]
    assert "evaluate.backend: 'ollama' is not allowed" in line and "Traceback" not in proc.stderr, proc.stderr
