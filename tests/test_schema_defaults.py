"""Config defaults live in config/schema.yaml only (issue #24): every property is described, every default is valid
for its own property, validate_config fills them in place, and no code supplies a default of its own for a key the
schema gives one."""

from __future__ import annotations

import ast
import copy
import re

import jsonschema
import pytest
import yaml

from medbridge.config import ConfigLoader, fill_defaults, load_config, load_schema, validate_config

from .conftest import ROOT

SRC = ROOT / "src" / "medbridge"
RULES = [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]

# `.get("<key>", default)` on a dict that is not a config section but has a key of the same name as a schema property
# with a default: (file relative to the project, key) -> why it is not a config read. Keep it short: prefer reading
# the config directly.
ALLOWED = {
    ("src/medbridge/audit.py", "answer_tag"): "a generation row's own answer_tag (rows written before it was recorded)",
    ("src/medbridge/audit.py", "models"): "a generations sidecar's list of model records, not the config's models",
    (
        "src/medbridge/plan_memory.py",
        "num_key_value_heads",
    ): "a checkpoint's config.json (HF text config): absent = MHA",
    ("src/medbridge/artifacts/table3.py", "models"): "reference/reported.yaml's role -> HF id map, not a config",
}


def _properties(node, path=""):
    """(dotted path, property schema) of every property the schema declares, at every level and in every $defs."""
    if isinstance(node, dict):
        for name, sub in (node.get("properties") or {}).items():
            yield f"{path}{name}", sub
            yield from _properties(sub, f"{path}{name}.")
        for key in ("$defs", "additionalProperties", "items"):
            sub = node.get(key)
            if key == "$defs" and isinstance(sub, dict):
                for name, d in sub.items():
                    yield from _properties(d, f"{path}$defs.{name}.")
            elif isinstance(sub, dict):
                yield from _properties(sub, f"{path}<{key}>.")


def _resolved(sub: dict) -> dict:
    """A property schema with its $ref resolved (its own keys kept beside the target's), $defs from the schema."""
    if "$ref" not in sub:
        return sub
    target = load_schema()
    for part in sub["$ref"].lstrip("#/").split("/"):
        target = target[part]
    return {**_resolved(target), **{k: v for k, v in sub.items() if k != "$ref"}}


def defaulted_keys() -> set[str]:
    return {path.rsplit(".", 1)[-1] for path, sub in _properties(load_schema()) if "default" in sub}


def test_every_schema_property_is_described():
    missing = [path for path, sub in _properties(load_schema()) if not sub.get("description")]
    assert not missing, f"config/schema.yaml: properties without a description: {missing}"


def test_every_default_is_valid_for_its_own_property():
    props = [(path, sub) for path, sub in _properties(load_schema()) if "default" in sub]
    assert len(props) > 90  # the sections and their keys (a guard against the scan finding nothing)
    root = jsonschema.Draft202012Validator(load_schema())
    for path, sub in props:
        errors = list(root.evolve(schema=sub).iter_errors(copy.deepcopy(sub["default"])))  # $refs against the root
        assert not errors, f"{path}: default {sub['default']!r} is not valid for it: {errors[0].message}"


def test_a_default_that_breaks_its_own_property_is_caught():
    """The check above can fail: a default outside its enum is an error of the same validator."""
    sub = {"enum": ["first", "last"], "default": "middle"}
    assert list(jsonschema.Draft202012Validator(sub).iter_errors(sub["default"]))


def _code_defaults(text: str) -> list[tuple[int, str]]:
    """(line, key) of every `<expr>.get("<key>", <default>)` call in Python source."""
    out = []
    for node in ast.walk(ast.parse(text)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and len(node.args) == 2
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.append((node.lineno, node.args[0].value))
    return out


SMK_GET = re.compile(r"""\.get\(\s*["'](\w+)["']\s*,""")


def _smk_defaults(text: str) -> list[tuple[int, str]]:
    """The same for Snakemake files (not Python: their `.get("<key>", ...)` calls are found by pattern)."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in SMK_GET.finditer(text)]


def code_supplied_defaults() -> list[str]:
    known = defaulted_keys()
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        for line, key in _code_defaults(path.read_text()):
            if key in known and (rel, key) not in ALLOWED:
                found.append(f"{rel}:{line}: .get({key!r}, ...)")
    for path in RULES:
        rel = str(path.relative_to(ROOT))
        for line, key in _smk_defaults(path.read_text()):
            if key in known and (rel, key) not in ALLOWED:
                found.append(f"{rel}:{line}: .get({key!r}, ...)")
    return found


def test_no_code_supplies_a_default_for_a_key_the_schema_knows():
    found = code_supplied_defaults()
    assert not found, (
        "config defaults belong in config/schema.yaml (filled in by validate_config); read these keys directly:\n"
        + "\n".join(found)
    )


def test_the_scan_finds_a_code_default():
    """The scans can fail: a code default for a schema-defaulted key is found, in Python and in a rule file alike."""
    assert _code_defaults('ev = cfg["evaluate"]\nx = ev.get("temperature", 0.7)\n') == [(2, "temperature")]
    assert _smk_defaults('TRAIN = config["train"]\nX = TRAIN.get("device", "cpu")\n') == [(2, "device")]
    assert {"temperature", "device", "select"} <= defaulted_keys()
    assert _code_defaults('x = spec.get("revision")\n') == []  # one argument: absence means something


def test_the_allowlist_names_live_code():
    """Each allowlisted entry still matches a call (a stale entry would hide a future config default)."""
    for rel, key in ALLOWED:
        assert (rel, key) in {(rel, k) for _, k in _code_defaults((ROOT / rel).read_text())}, (rel, key)
        assert key in defaulted_keys(), f"{rel}: {key!r} has no schema default any more; drop the entry"


def test_validate_config_fills_defaults_in_place(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg)
    for section in ("probe", "train", "rq3", "tiny_model"):
        cfg.pop(section)
    for key in ("temperature", "batch_size", "acc1", "judge_scope"):
        cfg["evaluate"].pop(key)
    out = validate_config(cfg)
    assert out is cfg  # in place: Snakemake's global config gets them too
    assert cfg["probe"]["select"] == "last" and cfg["probe"]["bn_momentum"] == 0.1 and "crop_size" not in cfg["probe"]
    assert cfg["train"]["device"] == "cpu" and cfg["train"]["sft"]["prompts"] == ["eval"]
    assert cfg["train"]["grpo"]["care"] == {
        "enabled": False,  # no care section: vanilla GRPO
        "span": "authors",
        "ema": "frozen",
        "ema_decay": 0.995,
        "ema_every": 10,
        "conf_clamp": 0.95,
        "conf_margin": 0.01,
        "bonus_weight": 0.5,
    }
    assert cfg["rq3"] == {"train_tasks": [], "inits": [], "pairs": {}}
    assert cfg["evaluate"]["temperature"] == 0.7 and cfg["evaluate"]["batch_size"] == 8
    assert cfg["evaluate"]["acc1"] == "sampled" and cfg["evaluate"]["judge_scope"] == "unclear"
    assert cfg["tiny_model"]["hidden_size"] == 64
    # keys whose absence means something stay absent
    assert "job_hours" not in cfg["evaluate"] and "min_pixels" not in cfg["evaluate"] and "hub_cache" not in cfg


def test_care_settings_fields_default_as_the_schema():
    """CareSettings keeps field defaults for code that builds one by hand; they must be the schema's."""
    from dataclasses import fields

    from medbridge.train.care import CareSettings

    care = _resolved(load_schema()["properties"]["train"]["properties"]["grpo"]["properties"]["care"])["properties"]
    assert {f.name: f.default for f in fields(CareSettings)} == {k: v["default"] for k, v in care.items()}


def test_given_values_win_and_a_given_care_section_is_on(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg)
    cfg["train"]["grpo"]["care"] = {}
    cfg["probe"] = {"select": "best_val", "bn_momentum": None}
    validate_config(cfg)
    assert cfg["train"]["grpo"]["care"]["enabled"] is True  # CareSettings' own rule: a care section is on
    assert cfg["probe"]["select"] == "best_val" and cfg["probe"]["bn_momentum"] is None  # null is a value


def test_filled_defaults_are_not_shared():
    a, b = (load_config(ROOT / "config" / "config.yaml") for _ in range(2))
    a["train"]["sft"]["prompts"].append("x")
    a["probe"]["logreg_c"].append(5.0)
    assert b["probe"]["logreg_c"] == [0.01, 0.1, 1.0, 10.0]
    assert load_schema()["properties"]["probe"]["properties"]["logreg_c"]["default"] == [0.01, 0.1, 1.0, 10.0]


def test_filling_is_idempotent_and_the_same_from_yaml_and_from_the_frozen_json(tmp_path):
    from medbridge.config import freeze_config

    cfg = load_config(ROOT / "config" / "config.yaml")
    frozen = load_config(freeze_config(cfg, tmp_path / "config.json"))
    assert frozen == cfg
    assert fill_defaults(copy.deepcopy(cfg)) == cfg


def test_the_command_line_path_fills_the_same():
    """The Snakefile's path (--config set=..., coerce_cli_types, validate_config on Snakemake's dict) gives the
    verbs' config: a key set to its default, or a section made by `set`, ends up as if left out."""
    from medbridge.config import apply_set, coerce_cli_types

    raw = yaml.load((ROOT / "config" / "config.yaml").read_text(), ConfigLoader)
    expected = validate_config(copy.deepcopy(raw))
    cfg = copy.deepcopy(raw)
    del cfg["probe"]
    apply_set(cfg, "probe.augment=none probe.train_per_class=40 probe.bn_momentum=null probe.select=best_val")
    apply_set(cfg, "evaluate.temperature=0.7 tiny_model.hidden_size=64")
    assert validate_config(coerce_cli_types(cfg)) == expected


def test_an_empty_recipe_section_is_refused_not_silently_switched_on(tiny_cfg):
    """`recipe:` present is the recipe's on-switch; `recipe: {}` was off before its tau got a default, so it is
    refused rather than read either way."""
    from medbridge import MedbridgeError

    cfg = copy.deepcopy(tiny_cfg)
    cfg["recipe"] = {}
    with pytest.raises(MedbridgeError, match="recipe"):
        validate_config(cfg)


def test_the_tiny_profile_lists_only_what_it_changes():
    """config/config.yaml keeps only the required keys and values that differ from the schema's defaults."""
    raw = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    filled = validate_config(copy.deepcopy(raw))
    schema = load_schema()

    def check(given, props, where):
        for key, value in given.items():
            sub = _resolved(props.get(key, {}))
            if "default" in sub and value == sub["default"]:
                pytest.fail(f"config/config.yaml: {where}{key} repeats the schema's default {value!r}")
            if isinstance(value, dict) and "properties" in sub:
                check(value, sub["properties"], f"{where}{key}.")

    check(raw, schema["properties"], "")
    assert filled["probe"]["epochs"] == 20 and filled["evaluate"]["bootstrap"] == 1000
