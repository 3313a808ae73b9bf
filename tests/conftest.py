"""Shared fixtures: the tiny config, synthetic MedMNIST files and a tiny model, built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_cfg() -> dict:
    from medbridge.config import validate_config

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    return validate_config(cfg)


def filled(cfg: dict) -> dict:
    """`cfg`, cut or changed by a test after validation (sections dropped, keys deleted, a partial section put in),
    with config/schema.yaml's defaults filled in again, in place, as validate_config fills every config a verb or the
    DAG reads. No validation: a test may pass a deliberately partial section."""
    from medbridge.config import fill_defaults

    return fill_defaults(cfg)


def consistent(cfg: dict) -> dict:
    """`cfg` after a test cut its models or its k: every section naming a role or a k follows (role lists filtered,
    the RQ3 grid dropped without its inits, recipe.k one of evaluate.k), so validate_config, the DAG's and every
    verb's check, accepts it."""
    from medbridge.config import validate_config

    roles = cfg["models"]
    cfg["evaluate"]["models"] = [m for m in cfg["evaluate"]["models"] if m in roles]
    if cfg.get("vqa"):
        cfg["vqa"]["models"] = [m for m in cfg["vqa"].get("models", []) if m in roles]
        cfg["vqa"]["reported_rows"] = {m: r for m, r in cfg["vqa"].get("reported_rows", {}).items() if m in roles}
    if not set(cfg.get("rq3", {}).get("inits", [])) <= set(roles):
        cfg.pop("rq3")
    if cfg.get("recipe", {}).get("k") not in (None, *cfg["evaluate"]["k"]):
        cfg["recipe"]["k"] = max(cfg["evaluate"]["k"])
    return validate_config(cfg)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory, tiny_cfg) -> Path:
    """Synthetic npz files for every dataset of the tiny profile (small splits)."""
    from medbridge.data.medmnist import make_synthetic, npz_name
    from medbridge.io import save_npz

    out = tmp_path_factory.mktemp("medmnist")
    for flag in tiny_cfg["data"]["datasets"]:
        arrays = make_synthetic(flag, 64, {"train": 40, "val": 16, "test": 32}, 0.35, seed=0)
        save_npz(out / npz_name(flag, 64), **arrays)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_cfg) -> Path:
    from medbridge.models.tiny import build_tiny_model, tokenizer_corpus

    out = tmp_path_factory.mktemp("models") / "base"
    build_tiny_model(out, tokenizer_corpus(tiny_cfg["data"]["datasets"]), tiny_cfg["tiny_model"], seed=0)
    return out


@pytest.fixture()
def cfg_with_local_model(tiny_cfg, tiny_model_dir, tmp_path) -> dict:
    """The tiny config with role `base` pointing at the session's tiny model and results under tmp_path."""
    import copy

    cfg = copy.deepcopy(tiny_cfg)
    cfg["models"] = {"base": {"source": "local", "path": str(tiny_model_dir)}}
    cfg["evaluate"]["models"] = ["base"]
    cfg["evaluate"]["n_samples"] = 4
    cfg["evaluate"]["k"] = [1, 2, 4]
    cfg["evaluate"]["max_new_tokens"] = 8
    return consistent(cfg)
