"""Load and validate a run config (config/config.yaml, config/paper.yaml) against config/schema.yaml."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from medbridge import MedbridgeError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = PROJECT_ROOT / "config" / "schema.yaml"


# YAML 1.1 (PyYAML, and Snakemake reading a --configfile) takes `5e-07` or `3e-5` (an exponent without a dot, or
# without a sign) for a string; JSON and YAML 1.2 take them for numbers. Configs are read the 1.2 way.
EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$")


class ConfigLoader(yaml.SafeLoader):
    """yaml.SafeLoader that also reads exponent floats such as `lr: 3e-5` as numbers."""


ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", EXPONENT_FLOAT, list("-+0123456789."))


def coerce_exponent_floats(cfg: dict) -> dict:
    """In place: every string like '3e-5' where the schema wants a number becomes that float. For configs parsed by
    someone else's YAML 1.1 loader (Snakemake's own --configfile); other strings are left alone."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema())
    for err in list(validator.iter_errors(cfg)):
        wanted = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        path = list(err.absolute_path)
        if (
            err.validator == "type"
            and "number" in wanted
            and path
            and isinstance(err.instance, str)
            and EXPONENT_FLOAT.match(err.instance)
        ):
            parent = cfg
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = float(err.instance)
    return cfg


def coerce_cli_types(cfg: dict) -> dict:
    """In place: strings where the schema wants an integer, number or boolean become one, if they read as one.
    Snakemake's `--config key=<yaml>` parses nested values with YAML's BaseLoader, where every scalar is a string
    (`'evaluate={"n_samples": 4}'` gives '4'); anything else is left for validate_config to name."""
    import jsonschema

    coerce_exponent_floats(cfg)
    validator = jsonschema.Draft202012Validator(load_schema())
    for err in list(validator.iter_errors(cfg)):
        path = list(err.absolute_path)
        if err.validator != "type" or not path or not isinstance(err.instance, str):
            continue
        value = yaml.load(err.instance, ConfigLoader) if err.instance.strip() else None
        wanted = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        if any(_is_type(value, t) for t in wanted):
            parent = cfg
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = value
    return cfg


def _is_type(value, name: str) -> bool:
    if isinstance(value, bool):
        return name == "boolean"
    return {"integer": isinstance(value, int), "number": isinstance(value, int | float)}.get(name, False)


SET_KEY = "set"  # `--config set="evaluate.n_samples=4 seed=1"` (Snakemake's --config accepts no dotted keys)


def apply_set(cfg: dict, text: str) -> dict:
    """In place: each `dotted.key=value` of `text` (space separated; quote a value with spaces) sets that one nested
    key, the rest of its section kept. Values are read as YAML (`k=[1,2]`, `lr=3e-5`) unless the schema wants a
    string there; a key the schema does not know is refused, naming it and the keys allowed beside it."""
    import shlex

    for pair in shlex.split(str(text)):
        key, eq, raw = pair.partition("=")
        if not eq or not key:
            raise MedbridgeError(f'--config set: {pair!r} is not key=value; e.g. set="evaluate.n_samples=4 seed=1"')
        path = key.split(".")
        node = _schema_at(path)
        try:
            value = raw if _wants_string(node) else yaml.load(raw, ConfigLoader)
        except yaml.YAMLError as e:
            raise MedbridgeError(f"--config set: value of {key} is not valid YAML ({raw!r}): {e}") from e
        parent = cfg
        for part in path[:-1]:
            if not isinstance(parent.get(part), dict):
                parent[part] = {}
            parent = parent[part]
        parent[path[-1]] = value
    return cfg


def _resolve(node: dict) -> dict:
    schema = load_schema()
    while "$ref" in node:
        target = schema
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _schema_at(path: list[str]) -> dict:
    node = load_schema()
    for i, part in enumerate(path):
        node = _resolve(node)
        props = node.get("properties", {})
        if part in props:
            node = props[part]
        elif isinstance(node.get("additionalProperties"), dict):  # e.g. models.<role>
            node = node["additionalProperties"]
        else:
            where = ".".join(path[:i]) or "the top level"
            raise MedbridgeError(
                f"--config set: unknown key {'.'.join(path[: i + 1])!r}; allowed keys under {where}: "
                f"{sorted(props)} (config/schema.yaml)"
            )
    return _resolve(node)


def schema_default(key: str):
    """The schema's default of a dotted key (e.g. "recipe.tau"), for code that needs it where the key's section is
    absent (an optional section is not filled in). KeyError if the schema gives that key no default."""
    path = key.split(".")
    parent = _schema_at(path[:-1]) if len(path) > 1 else load_schema()
    return copy.deepcopy(parent["properties"][path[-1]]["default"])


def _wants_string(node: dict) -> bool:
    if "enum" in node:
        return all(isinstance(v, str) for v in node["enum"])
    return node.get("type") == "string"


@lru_cache(maxsize=1)
def load_schema() -> dict:
    # libyaml's loader where built (10x the pure-Python one): every Snakemake start reads the schema
    return yaml.load(SCHEMA_PATH.read_text(), getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def validate_config(cfg: dict) -> dict:
    """The one check of a config, for the DAG (Snakefile), `medbridge validate-config` and every verb alike: the JSON
    Schema on the config as given, then its defaults filled in (fill_defaults: in place, so Snakemake's global `config`
    gets them too), then every cross-field check (roles, paths and k here; the vqa/pmc, recipe and rq3 sections in
    their own modules). Raise MedbridgeError naming the offending key and what is allowed there; return cfg, filled."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        raise MedbridgeError("invalid config:\n" + "\n".join(_describe(e) for e in errors[:10]))
    fill_defaults(cfg)
    _check_references(cfg)
    for check in _section_checks():
        check(cfg)
    return cfg


def fill_defaults(cfg: dict) -> dict:
    """In place: each key config/schema.yaml gives a `default:` and cfg lacks, at every level, set to a deep copy of
    that default; a section given a default (`probe: {}`) is filled in turn. The schema is the only place a config
    default lives: code reads keys directly. Idempotent, so a YAML file, results/<run>/config.json (written filled)
    and `--config set=...` all end up with the same values. For a config that has passed the schema (validate_config
    fills after validating the config as given, so a cross-field check of the schema sees what the user wrote)."""
    for _ in _filling_validator()(load_schema()).iter_errors(cfg):
        pass  # the filling happens while the instance is walked; a valid config has no errors
    return cfg


@lru_cache(maxsize=1)
def _filling_validator():
    """Draft 2020-12 whose `properties` keyword first sets each missing property that has a `default` (the
    jsonschema FAQ's extend-with-default pattern), then descends into the properties as usual."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    properties = base.VALIDATORS["properties"]

    def set_defaults(validator, props, instance, schema):
        if validator.is_type(instance, "object"):
            for name, sub in props.items():
                if isinstance(sub, dict) and "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from properties(validator, props, instance, schema)

    return jsonschema.validators.extend(base, {"properties": set_defaults})


def _section_checks():
    """Each section's own cross-field check, kept beside the code that reads the section (imported here, late:
    those modules import this one)."""
    from medbridge.artifacts.rq3 import check_rq3_config
    from medbridge.data.vqa import check_vqa_config
    from medbridge.recipe import check_recipe_config

    return check_vqa_config, check_recipe_config, check_rq3_config


def _describe(err) -> str:
    where = ".".join(str(p) for p in err.absolute_path) or "<top level>"
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        return f"  {where}: unknown key(s) {extra}; allowed keys here: {allowed}"
    if err.validator == "enum":
        return f"  {where}: {err.instance!r} is not allowed; choose one of {err.validator_value}"
    if err.validator == "required":
        return f"  {where}: {err.message}; add it (see config/schema.yaml)"
    if err.validator == "type":
        return f"  {where}: {err.instance!r} should be of type {err.validator_value}"
    return f"  {where}: {err.message}"


def _check_references(cfg: dict) -> None:
    """Cross-field checks JSON Schema cannot express: roles and datasets named elsewhere must exist."""
    roles = set(cfg["models"])
    for role in cfg["evaluate"]["models"]:
        if role not in roles:
            raise MedbridgeError(
                f"evaluate.models names unknown model role {role!r}; defined roles: {sorted(roles)}. "
                "Add it under `models:` or remove it from evaluate.models"
            )
    for role, spec in cfg["models"].items():
        if spec["source"] == "hub" and "id" not in spec:
            raise MedbridgeError(f"models.{role}: source hub needs an `id` (an HF model id)")
        if spec["source"] == "local" and "path" not in spec:
            raise MedbridgeError(f"models.{role}: source local needs a `path` (a model directory)")
        if spec["source"] in ("sft", "grpo") and spec.get("init") not in roles:
            raise MedbridgeError(
                f"models.{role}: init {spec.get('init')!r} is not a defined role; choose one of {sorted(roles)}"
            )
    for where, value in _config_paths(cfg):
        check_path_confined(value, where)
    k_max = max(cfg["evaluate"]["k"])
    if k_max > cfg["evaluate"]["n_samples"]:
        raise MedbridgeError(
            f"evaluate.k asks for k={k_max} but evaluate.n_samples is {cfg['evaluate']['n_samples']}: "
            "Pass@k needs n >= k; raise n_samples or drop that k"
        )


def _config_paths(cfg: dict):
    if "root" in cfg["data"]:
        yield "data.root", cfg["data"]["root"]
    if "hub_cache" in cfg:
        yield "hub_cache", cfg["hub_cache"]
    for role, spec in cfg["models"].items():
        if "path" in spec:
            yield f"models.{role}.path", spec["path"]


def check_path_confined(value: str, where: str) -> None:
    """A relative path from a config must stay inside the project; reaching elsewhere takes an explicit absolute
    path, so a shared config cannot quietly read or write outside the checkout."""
    p = Path(value)
    if p.is_absolute():
        return
    resolved = (PROJECT_ROOT / p).resolve()
    if not resolved.is_relative_to(PROJECT_ROOT):
        raise MedbridgeError(
            f"{where}: relative path {value!r} leaves the project directory; use a path inside the project or an "
            "explicit absolute path"
        )


def load_config(path: str | Path, overrides: dict | None = None) -> dict:
    path = Path(path)
    if not path.exists():
        raise MedbridgeError(f"config file {path} not found; pass an existing file (e.g. config/config.yaml)")
    try:  # results/<run>/config.json (freeze_config) as JSON: its floats come back as floats
        cfg = json.loads(path.read_text()) if path.suffix == ".json" else yaml.load(path.read_text(), ConfigLoader)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise MedbridgeError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {e}") from e
    if not isinstance(cfg, dict):
        raise MedbridgeError(f"{path} must hold a mapping of config keys")
    if overrides:
        cfg = deep_merge(cfg, overrides)
    return validate_config(cfg)


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def config_hash(obj: Any) -> str:
    """Stable short hash of a config (or a part of it), for provenance and rerun triggers."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def run_dir(cfg: dict) -> Path:
    return Path("results") / cfg["run_name"]


def freeze_config(cfg: dict, path: str | Path) -> Path:
    """Write the validated run config where every verb reads it; rewrite only on change (keeps mtimes stable)."""
    from medbridge.io import write_text

    path = Path(path)
    text = json.dumps(cfg, indent=2, sort_keys=True) + "\n"
    if not path.exists() or path.read_text() != text:
        write_text(path, text)
    return path
