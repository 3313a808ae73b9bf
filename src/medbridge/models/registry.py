"""Model roles -> where the weights come from, and the one way every step loads a model.

A role (`base`, `sft`, `rl`, `judge`, a Table 3 baseline, ...) is a `models:` entry of the config: an HF hub id
(with a pinnable revision, an optional processor override, e.g. OctoMed loads Qwen2.5-VL-7B-Instruct's
processor, and an optional `subfolder` for repos that keep one checkpoint per folder, e.g. Med-R1), a local
directory, or a model this DAG makes (the tiny model, SFT and GRPO results). Models the DAG makes and are not config
roles (the RQ3 grid's `rq3-<init>-<task>`) live under results/<run>/models/<name>/ as well.
Loading always goes through AutoProcessor / AutoModelForImageTextToText, safetensors only, and trust_remote_code
only for ids on the config's allow-list.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from medbridge import MedbridgeError
from medbridge.config import run_dir

MADE_BY_DAG = ("tiny", "sft", "grpo")


@dataclass(frozen=True)
class ModelSource:
    name: str
    path: str  # HF id or local directory
    revision: str | None
    processor_path: str
    processor_revision: str | None
    trust_remote_code: bool
    dtype: str
    local: bool


def made_model_dir(cfg: dict, name: str) -> Path:
    return run_dir(cfg) / "models" / name


def hub_subfolder_dir(spec: dict) -> str:
    """The local directory of a hub role's `subfolder` (one checkpoint of a repo that keeps several, e.g. Med-R1's
    per-modality/per-task folders): that folder of the repo's snapshot in the HF cache, read offline (the download
    rule fetched it). Before the download, where it will be: `<id>@<revision>/<subfolder>` under the cache."""
    from huggingface_hub import snapshot_download

    try:
        snap = snapshot_download(
            spec["id"], revision=spec.get("revision"), local_files_only=True, allow_patterns=[f"{spec['subfolder']}/*"]
        )
    except Exception:  # not downloaded yet: a path that names what is missing (check_local_dir reports it)
        where = f"{spec['id']}@{spec.get('revision') or 'main'}/{spec['subfolder']}"
        return f"{where} (not downloaded: medbridge download-model)"
    return str(Path(snap) / spec["subfolder"])


STEPS = ("evaluate", "probe", "train")  # which step loads the model: a role's processor override may name some


def resolve(cfg: dict, name: str, step: str = "evaluate") -> ModelSource:
    """Where a role's weights and processor come from for `step`: its `processor` override applies to the steps in
    `processor_steps` (default every step), as the authors' scripts load one per step (their GRPO trainer takes
    Qwen2.5-VL-7B-Instruct's processor for OctoMed; their inference and probe scripts the model's own)."""
    if step not in STEPS:
        raise MedbridgeError(f"unknown step {step!r}; one of {list(STEPS)}")
    from medbridge.artifacts.rq3 import model_spec

    spec = model_spec(cfg, name)  # a role or an RQ3 grid model
    if spec is None and not made_model_dir(cfg, name).exists():
        raise MedbridgeError(f"unknown model role {name!r}; defined roles: {sorted(cfg['models'])}")
    spec = spec or {"source": "grpo"}  # a model directory the DAG made
    dtype = spec["dtype"] if "dtype" in spec else cfg["evaluate"]["dtype"]
    if spec["source"] == "hub" and spec.get("subfolder"):  # loaded, fingerprinted as the local folder it is
        path, revision, local = hub_subfolder_dir(spec), None, True
    elif spec["source"] == "hub":
        path, revision, local = spec["id"], spec.get("revision"), False
    elif spec["source"] == "local":
        path, revision, local = spec["path"], None, True
    else:
        path, revision, local = str(made_model_dir(cfg, name)), None, True
    allow = set(cfg["trust_remote_code_allowlist"])
    override = "processor" in spec and step in spec.get("processor_steps", STEPS)
    return ModelSource(
        name=name,
        path=path,
        revision=revision,
        processor_path=spec["processor"] if override else path,
        processor_revision=spec.get("processor_revision") if override else revision,
        trust_remote_code=spec.get("id", path) in allow,
        dtype=dtype,
        local=local,
    )


def snapshot_dir(repo_id: str, revision: str | None) -> str:
    """The local folder of a hub repo at a revision: the cache's snapshot (no network), else fetched when the hub
    may be reached. Loading from the folder, not the id, is what lets a pinned revision reach every loader: vLLM
    (TRL builds its engine from `model.name_or_path` with no revision) would ask the cache for refs/main, which a
    cache filled at a pinned commit does not have."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    from medbridge.hub import ALLOW_PATTERNS

    try:
        return snapshot_download(repo_id, revision=revision, local_files_only=True)
    except LocalEntryNotFoundError as e:
        if constants.HF_HUB_OFFLINE:
            raise MedbridgeError(
                f"{repo_id} (revision {revision or 'main'}) is not in the hub cache {constants.HF_HUB_CACHE} and the "
                "hub is offline; fetch it first (snakemake runs the download rule; "
                "`medbridge download-model --model <role>`)"
            ) from e
    return snapshot_download(repo_id, revision=revision, allow_patterns=ALLOW_PATTERNS)


def local_source(src: ModelSource) -> ModelSource:
    """`src` with its hub repos replaced by their local snapshot folders (revisions resolved there); local and
    DAG-made models as they are. Identity (fingerprints, provenance) stays with `resolve`'s id and revision."""
    if src.local:
        return src
    path = snapshot_dir(src.path, src.revision)
    same = (src.processor_path, src.processor_revision) == (src.path, src.revision)
    proc = path if same else snapshot_dir(src.processor_path, src.processor_revision)
    return replace(src, path=path, revision=None, processor_path=proc, processor_revision=None)


def check_local_dir(path: str | Path) -> None:
    p = Path(path)
    if not p.is_dir():
        raise MedbridgeError(f"model directory {p} does not exist; build it first (snakemake makes it)")
    if not (p / "config.json").exists() or not any(p.glob("*.safetensors")):
        raise MedbridgeError(
            f"model directory {p} has no config.json or no *.safetensors weights; remake it "
            "(delete the folder and rerun its rule) or point the role at a complete checkpoint"
        )


def load_processor(src: ModelSource):
    from transformers import AutoProcessor

    src = local_source(src)
    return AutoProcessor.from_pretrained(
        src.processor_path, revision=src.processor_revision, trust_remote_code=src.trust_remote_code
    )


def load_model(src: ModelSource, device: str = "cpu"):
    import torch
    from transformers import AutoModelForImageTextToText

    if src.local:
        check_local_dir(src.path)
    src = local_source(src)
    model = AutoModelForImageTextToText.from_pretrained(
        src.path,
        revision=src.revision,
        dtype=getattr(torch, src.dtype),
        trust_remote_code=src.trust_remote_code,
        use_safetensors=True,
    )
    return model.to(device).eval()


def load(cfg: dict, name: str, device: str = "cpu", step: str = "evaluate"):
    """(model, processor, source) for a role, ready for inference."""
    src = resolve(cfg, name, step)
    if src.local:
        check_local_dir(src.path)  # before the processor: its error would not name the real problem
    processor = load_processor(src)
    processor.tokenizer.padding_side = "left"  # batched generation needs left padding
    return load_model(src, device), processor, src
