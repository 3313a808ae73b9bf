"""Table 3's medical VQA benchmarks (and the PMC-VQA training pool) as MCQ items: one adapter module per source.

The registry maps a name to its adapter; it is filled by scanning this package for modules that define `ADAPTER`,
so adding a benchmark is one module here plus one line under `vqa.benchmarks` in the config. Light to import (no
`datasets` import): the Snakefile checks the vqa config at parse time through `check_vqa_config`.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from medbridge import MedbridgeError
from medbridge.data.vqa.base import Adapter

_HELPERS = {"base", "build", "closed", "fixtures"}


@lru_cache(maxsize=1)
def registry() -> dict[str, Adapter]:
    """name -> Adapter for every module of this package that defines one."""
    out = {}
    for mod in pkgutil.iter_modules(__path__):
        if mod.name in _HELPERS:
            continue
        adapter = getattr(importlib.import_module(f"{__name__}.{mod.name}"), "ADAPTER", None)
        if adapter is not None:
            out[adapter.name] = adapter
    return out


def names(kind: str | None = None) -> list[str]:
    return sorted(n for n, a in registry().items() if kind is None or a.kind == kind)


def get_adapter(name: str, kind: str | None = None) -> Adapter:
    adapter = registry().get(name)
    if adapter is None or (kind is not None and adapter.kind != kind):
        raise MedbridgeError(
            f"unknown {kind or 'VQA source'} {name!r}; choose one of {names(kind)} "
            "(or add a module defining ADAPTER to src/medbridge/data/vqa/)"
        )
    return adapter


def benchmark_names(cfg: dict) -> list[str]:
    return [b["name"] for b in cfg.get("vqa", {}).get("benchmarks", [])]


def source_entry(cfg: dict, name: str) -> dict:
    """The config entry of a source: its `vqa.benchmarks` line, `vqa.pmc.train` for the training pool, else {}."""
    vqa = cfg.get("vqa", {})
    for entry in vqa.get("benchmarks", []):
        if entry["name"] == name:
            return entry
    train = vqa["pmc"]["train"] if "pmc" in vqa else {}
    return train if train.get("name") == name else {"name": name}


def check_vqa_config(cfg: dict) -> None:
    """Cross-field checks of the `vqa` section the JSON Schema cannot express; raises MedbridgeError."""
    vqa = cfg.get("vqa")
    if not vqa:
        return
    seen = benchmark_names(cfg)
    if len(set(seen)) != len(seen):
        raise MedbridgeError(f"vqa.benchmarks lists a benchmark twice: {seen}")
    for name in seen:
        get_adapter(name, "benchmark")
    roles = set(cfg["models"])
    for role in vqa["models"]:
        if role not in roles:
            raise MedbridgeError(f"vqa.models names unknown model role {role!r}; defined roles: {sorted(roles)}")
    for role in vqa["reported_rows"]:
        if role not in roles:
            raise MedbridgeError(f"vqa.reported_rows names unknown model role {role!r}; defined: {sorted(roles)}")
    pmc = vqa.get("pmc", {})
    if pmc.get("labeller") == "vlm" and pmc["judge"] not in roles:
        raise MedbridgeError(
            f"vqa.pmc.labeller vlm asks model role {pmc['judge']!r}, which is not "
            f"defined; add it under `models:` or use labeller: keyword"
        )
    if pmc:
        from medbridge.data.pmc import check_categories

        check_categories(pmc)
