"""Config at its edges (issue #25): k at and one past n_samples; model roles missing their `id` or `path`."""

from __future__ import annotations

import copy

import pytest

from medbridge import MedbridgeError
from medbridge.config import validate_config


def _with(cfg: dict, **evaluate) -> dict:
    out = copy.deepcopy(cfg)
    out["evaluate"].update(evaluate)
    return out


def test_k_may_equal_n_samples_but_not_exceed_it(tiny_cfg):
    n = tiny_cfg["evaluate"]["n_samples"]
    assert validate_config(_with(tiny_cfg, k=[1, n]))["evaluate"]["k"] == [1, n]
    with pytest.raises(MedbridgeError, match=f"k={n + 1}"):
        validate_config(_with(tiny_cfg, k=[1, n + 1]))
    with pytest.raises(MedbridgeError, match="Pass@k needs n >= k"):
        validate_config(_with(tiny_cfg, k=[n + 1, 1]))  # the largest k counts, wherever it stands


@pytest.mark.parametrize(
    "spec,expect",
    [
        ({"source": "hub"}, "source hub needs an `id`"),
        ({"source": "hub", "path": "models/x"}, "source hub needs an `id`"),  # a path does not stand in for an id
        ({"source": "local"}, "source local needs a `path`"),
        ({"source": "local", "id": "org/x"}, "source local needs a `path`"),
    ],
)
def test_roles_missing_id_or_path_are_rejected(tiny_cfg, spec, expect):
    cfg = copy.deepcopy(tiny_cfg)
    cfg["models"]["extra"] = spec
    with pytest.raises(MedbridgeError, match=expect) as err:
        validate_config(cfg)
    assert "models.extra" in str(err.value)


def test_roles_with_id_or_path_are_accepted(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg)
    cfg["models"]["hubbed"] = {"source": "hub", "id": "org/x"}
    cfg["models"]["local"] = {"source": "local", "path": "models/x"}
    assert set(validate_config(cfg)["models"]) >= {"hubbed", "local"}


def test_exponent_strings_become_numbers_where_the_schema_wants_one(tiny_cfg):
    """Snakemake's YAML 1.1 reads `3e-5` as a string: coerced in place at its nested path, other strings kept."""
    from medbridge.config import coerce_exponent_floats

    cfg = copy.deepcopy(tiny_cfg)
    cfg["train"]["grpo"]["lr"], cfg["evaluate"]["temperature"], cfg["run_name"] = "3e-5", "7E-1", "1e5"
    before = copy.deepcopy(cfg)
    assert coerce_exponent_floats(cfg) is cfg
    assert cfg["train"]["grpo"]["lr"] == 3e-5 and cfg["evaluate"]["temperature"] == 0.7
    assert cfg["run_name"] == "1e5"  # a string where the schema wants one
    before["train"]["grpo"]["lr"], before["evaluate"]["temperature"] = 3e-5, 0.7
    assert cfg == before  # nothing else touched
    validate_config(cfg)


def test_a_file_that_does_not_parse_is_named_as_json_or_yaml(tmp_path):
    from medbridge.config import load_config

    (tmp_path / "c.json").write_text("{not json")
    (tmp_path / "c.yaml").write_text("a: [unclosed")
    with pytest.raises(MedbridgeError, match="c.json is not valid JSON"):
        load_config(tmp_path / "c.json")
    with pytest.raises(MedbridgeError, match="c.yaml is not valid YAML"):
        load_config(tmp_path / "c.yaml")


def test_paths_are_confined_to_the_project_unless_absolute(tiny_cfg):
    from medbridge.config import check_path_confined

    check_path_confined("/elsewhere/models", "models.x.path")  # explicit absolute: allowed
    check_path_confined("results/x", "data.root")
    with pytest.raises(MedbridgeError, match="data.root: relative path '../x' leaves the project"):
        check_path_confined("../x", "data.root")
    cfg = copy.deepcopy(tiny_cfg)
    cfg["models"]["extra"] = {"source": "local", "path": "../../models/x"}  # every role's path is checked
    with pytest.raises(MedbridgeError, match="models.extra.path"):
        validate_config(cfg)


def test_deep_merge_merges_mappings_and_replaces_the_rest():
    from medbridge.config import deep_merge

    base = {"a": {"x": 1, "y": 2}, "b": 1, "c": {"z": 3}}
    got = deep_merge(base, {"a": {"y": 5}, "b": {"new": 1}, "c": 7, "d": {"e": 1}})
    assert got == {"a": {"x": 1, "y": 5}, "b": {"new": 1}, "c": 7, "d": {"e": 1}}
    assert base == {"a": {"x": 1, "y": 2}, "b": 1, "c": {"z": 3}}  # the base is left as it was


def test_at_most_ten_errors_are_listed(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg)
    cfg["evaluate"]["models"] = list(range(12))  # twelve items of the wrong type: twelve errors
    with pytest.raises(MedbridgeError) as err:
        validate_config(cfg)
    assert len(str(err.value).splitlines()) == 1 + 10


def test_config_hash_and_run_dir():
    import hashlib
    import json
    from pathlib import Path

    from medbridge.config import config_hash, run_dir

    assert config_hash({"b": 1, "a": [2]}) == config_hash({"a": [2], "b": 1})  # key order does not matter
    assert config_hash({"a": 1}) == hashlib.sha256(json.dumps({"a": 1}).encode()).hexdigest()[:16]
    assert run_dir({"run_name": "tiny"}) == Path("results") / "tiny"


def test_only_type_errors_are_coerced(tiny_cfg, tmp_path):
    """An exponent-like string that fails another check (an enum) stays a string; freezing is stable text."""
    from medbridge.config import coerce_exponent_floats, freeze_config

    cfg = copy.deepcopy(tiny_cfg)
    cfg["evaluate"]["backend"] = "1e5"
    cfg["evaluate"]["n_samples"] = 3  # an error whose instance is not a string at all
    cfg["evaluate"]["k"] = ["x"]
    coerce_exponent_floats(cfg)
    assert cfg["evaluate"]["backend"] == "1e5" and cfg["evaluate"]["k"] == ["x"]
    # the frozen text does not depend on key order, so an unchanged config is never rewritten
    path = freeze_config(tiny_cfg, tmp_path / "config.json")
    mtime = path.stat().st_mtime_ns
    freeze_config(dict(reversed(list(tiny_cfg.items()))), path)
    assert path.stat().st_mtime_ns == mtime
