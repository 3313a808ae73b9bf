"""Hub models and datasets: fetched once, by localrules on the login node, into one configured cache; the jobs that
load them (the GPU rules, the VQA items, the PMC-VQA labelling and draw) read that cache with HF_HUB_OFFLINE=1, so
parallel jobs never download the same 7B (or the same eval set) at once and a compute node needs no network.

`hub_cache` (config) names the cache directory (relative paths are relative to the checkout, the jobs' working
directory; the Snakefile binds an outside path into the container). Without it, huggingface_hub's own cache and
network access apply, as before.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from medbridge import MedbridgeError

# Verbs that read the hub cache (models: the GPU rules; datasets: the VQA items and the PMC-VQA pool): offline when a
# hub cache is configured. Only the download verbs (local rules, the login node) reach the network.
OFFLINE_VERBS = frozenset(
    {"generate", "score", "features", "sft", "grpo", "pmc-label", "diagnose", "vqa-items", "pmc-balance"}
)
# What a model directory needs: weights as safetensors, configs, tokenizer and chat template (no pickles).
ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.jinja", "*.model", "*.tiktoken", "*.py"]


def cache_dir(cfg: dict) -> Path | None:
    cache = cfg.get("hub_cache")
    return Path(cache).absolute() if cache else None


def use_cache(cfg: dict, verb: str | None) -> None:
    """Point huggingface_hub (hence transformers, vLLM, datasets) at the configured cache, offline for model-loading
    verbs. Environment first (read by libraries imported later), then the hub's constants if already imported."""
    cache = cache_dir(cfg)
    if cache is None:
        return
    offline = verb in OFFLINE_VERBS
    os.environ["HF_HUB_CACHE"] = str(cache)
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_CACHE = str(cache)
        constants.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE or offline


def repos(cfg: dict, role: str) -> list[tuple[str, str | None]]:
    """(repo id, revision) a hub role loads: its weights and, if overridden, its processor's repo."""
    spec = cfg["models"].get(role)
    if spec is None or spec["source"] != "hub":
        raise MedbridgeError(f"model role {role!r} is not a hub model (source: hub) of this config; nothing to fetch")
    out = [(spec["id"], spec.get("revision"))]
    if "processor" in spec:
        out.append((spec["processor"], spec.get("processor_revision")))
    return list(dict.fromkeys(out))


def weight_folders(repo_id: str, revision: str | None) -> list[str]:
    """The folders of a hub repo that hold safetensors (to name the choices when a `subfolder` is wrong)."""
    from huggingface_hub import list_repo_files

    try:
        files = list_repo_files(repo_id, revision=revision)
    except Exception as e:  # offline: say so
        return [f"(could not list: {type(e).__name__})"]
    return sorted({f.rsplit("/", 1)[0] if "/" in f else "." for f in files if f.endswith(".safetensors")})


def download(cfg: dict, role: str) -> dict:
    """snapshot_download every repo of a role at its configured revision into the cache; what was fetched."""
    from huggingface_hub import snapshot_download

    cache = cache_dir(cfg)
    to_fetch = repos(cfg, role)  # checks the role first
    sub = cfg["models"][role].get("subfolder")
    fetched = []
    for i, (repo_id, revision) in enumerate(to_fetch):
        patterns = [f"{sub}/{p}" for p in ALLOW_PATTERNS] if i == 0 and sub else ALLOW_PATTERNS
        try:
            path = Path(snapshot_download(repo_id, revision=revision, cache_dir=cache, allow_patterns=patterns))
        except Exception as e:  # network, auth, unknown id or revision: say which repo and what to check
            raise MedbridgeError(
                f"could not fetch {repo_id} (revision {revision or 'main'}) for role {role!r}: {type(e).__name__}: "
                f"{e}. Check the id/revision in models.{role}, network on this node, and HF_TOKEN for gated repos"
            ) from e
        if i == 0 and sub and not any((path / sub).glob("*.safetensors")):
            raise MedbridgeError(
                f"{repo_id} has no *.safetensors weights in sub-folder {sub!r} (models.{role}."
                f"subfolder); its folders with weights: "
                f"{weight_folders(repo_id, revision)}"
            )
        if i == 0 and not sub and not any(path.glob("*.safetensors")):  # the weights repo (the processor's needs none)
            raise MedbridgeError(f"{repo_id} has no *.safetensors weights; medbridge loads safetensors only")
        fetched.append(
            {
                "id": repo_id,
                "revision": revision,
                "commit": path.name,
                "path": str(path),
                "subfolder": sub if i == 0 else None,
                "files": sorted(str(f.relative_to(path)) for f in path.rglob("*") if f.is_file()),
            }
        )
    return {"role": role, "cache": str(cache) if cache else None, "repos": fetched}


def dataset_key(repo_id: str) -> str:
    """A dataset repo as a file name (as the hub cache spells it: org--name)."""
    return repo_id.replace("/", "--")


def dataset_repos(cfg: dict, source: str | None = None) -> dict[str, dict]:
    """{key: {id, revision}} of the hub datasets the config reads (those of one VQA `source` name: a benchmark, or
    the PMC-VQA pool), when a hub cache is configured; none for fixtures or a source with its own `path`."""
    from medbridge.data.vqa import get_adapter, source_entry

    vqa = cfg.get("vqa") or {}
    if cache_dir(cfg) is None or vqa.get("source", "hub") == "fixtures":
        return {}
    names = [b["name"] for b in vqa.get("benchmarks", [])]
    if vqa.get("pmc"):
        names.append(vqa["pmc"]["train"]["name"])
    out = {}
    for name in names if source is None else [source]:
        adapter, entry = get_adapter(name), source_entry(cfg, name)
        if entry.get("path"):
            continue
        if vqa.get("source") == "medvlthinker" and adapter.kind == "benchmark":
            cons = vqa["consolidated"]
            if cons.get("path"):
                continue
            repo = (cons.get("id", get_adapter("medvlthinker_eval").hub["id"]), cons.get("revision"))
        else:
            repo = (entry.get("id", adapter.hub["id"]), entry.get("revision"))
        out[dataset_key(repo[0])] = {"id": repo[0], "revision": repo[1]}
    return out


def download_dataset(cfg: dict, key: str) -> dict:
    """snapshot_download one dataset repo the config reads, at its revision, into the hub cache: what was fetched."""
    from huggingface_hub import snapshot_download

    repos = dataset_repos(cfg)
    if key not in repos:
        raise MedbridgeError(
            f"{key!r} is not a hub dataset this config reads (with hub_cache set): {sorted(repos) or 'none'}"
        )
    repo_id, revision = repos[key]["id"], repos[key]["revision"]
    try:
        path = Path(snapshot_download(repo_id, repo_type="dataset", revision=revision, cache_dir=cache_dir(cfg)))
    except Exception as e:  # network, auth, unknown id or revision
        raise MedbridgeError(
            f"could not fetch dataset {repo_id} (revision {revision or 'main'}): {type(e).__name__}: "
            f"{e}. Check the id/revision in the vqa config, network on this node, and HF_TOKEN "
            "for gated datasets"
        ) from e
    return {
        "id": repo_id,
        "revision": revision,
        "commit": path.name,
        "cache": str(cache_dir(cfg)),
        "path": str(path),
        "files": sorted(str(f.relative_to(path)) for f in path.rglob("*") if f.is_file()),
    }


def dataset_snapshot(cfg: dict, repo_id: str, revision: str | None) -> Path | None:
    """The cached snapshot folder of a dataset repo (read offline); None without a hub cache, or when it is not
    cached and this verb may use the network (e.g. `vqa-counts` on the login node): then the hub it is."""
    from huggingface_hub import constants, snapshot_download

    if cache_dir(cfg) is None:
        return None
    try:
        return Path(
            snapshot_download(
                repo_id, repo_type="dataset", revision=revision, cache_dir=cache_dir(cfg), local_files_only=True
            )
        )
    except Exception as e:
        if not constants.HF_HUB_OFFLINE:
            return None
        raise MedbridgeError(
            f"dataset {repo_id} (revision {revision or 'main'}) is not in the hub cache "
            f"{cache_dir(cfg)} ({type(e).__name__}); fetch it on the login node first (Snakemake's "
            f"download_dataset rule, or `medbridge download-dataset --repo {dataset_key(repo_id)}`)"
        ) from e
