"""Per-GPU memory and checkpoint disk of a config's GPU jobs, for `medbridge plan` (which prints them and refuses a
plan that does not fit its cards).

A model is described by an `Arch`: parameters, KV-cache bytes per token, its largest tensor and its own context,
read from its config.json (hub cache snapshot, local or DAG-made directory, the tiny model's config section) or from
the role's `memory` keys in the config. Per GPU:
  - a vLLM engine (generate, the judge's score and pmc_label, GRPO's colocated rollouts) holds
    gpu_memory_utilization x the card; in it the weights (/ tensor parallel), a fixed overhead (activations of the
    profiling run, CUDA graphs: an assumption) and the KV cache, which must hold one request of the engine's
    max_model_len (medbridge.engine): vLLM refuses to start otherwise;
  - training under ZeRO-3 on N GPUs: weights, gradients and optimizer states / N, DeepSpeed's live (gathered)
    parameters, reference models (bf16, / N), and the larger of the activations and the CARE EMA update's gathered
    parameters (the update runs between steps), plus the colocated vLLM's share.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from medbridge import MedbridgeError

GIB = 2**30
BF16 = 2
# What the CARE reference's EMA update gathers at once under ZeRO-3 (medbridge.train.care.EmaReferenceCallback): one
# parameter pair at a time ("parameter": two copies of the largest tensor); TRL's SyncRefModelCallback, which the
# code used before, gathers the policy and the reference whole ("model"). Keep equal to what the code does (issue
# #20, item 2); under care.ema: frozen there is no update at all.
CARE_EMA_GATHER = "parameter"
# Optimizer state bytes per parameter (fp32 master weights and moments) by train.<kind>.optim, under bf16 training
OPTIMIZER_BYTES = {"adamw_torch": 12, "adamw_torch_fused": 12, "sgd": 4}


@dataclass(frozen=True)
class Arch:
    params: float  # parameters (count)
    kv_bytes_per_token: float  # K and V of every layer in bf16
    largest: float  # parameters of the largest single tensor (the token embedding)
    context: int | None  # max_position_embeddings


def arch_from_text_config(t: dict, total_params: float | None, vision_params: float) -> Arch:
    """From a (text) config's sizes; parameters from the safetensors index when known, else counted from the sizes
    (embedding, untied head, attention with grouped KV heads, SwiGLU MLP) plus the vision tower."""
    h, layers, vocab = t["hidden_size"], t["num_hidden_layers"], t["vocab_size"]
    heads = t["num_attention_heads"]
    kv_heads = t.get("num_key_value_heads", heads)
    head_dim = t.get("head_dim") or h // heads
    if total_params is None:
        attn = h * heads * head_dim * 2 + 2 * h * kv_heads * head_dim
        total_params = (
            vocab * h * (1 if t.get("tie_word_embeddings") else 2)
            + layers * (attn + 3 * h * t["intermediate_size"])
            + vision_params
        )
    return Arch(total_params, 2 * layers * kv_heads * head_dim * BF16, vocab * h, t.get("max_position_embeddings"))


def arch_from_dir(path: Path, vision_params: float) -> Arch | None:
    conf = path / "config.json"
    if not conf.is_file():
        return None
    c = json.loads(conf.read_text())
    text = {**c, **c.get("text_config", {})}  # Qwen2.5-VL keeps the LLM sizes at the top level or in text_config
    return arch_from_text_config(text, count_params(path), vision_params)


def count_params(path: Path) -> float | None:
    """Parameters of a checkpoint folder: from its safetensors headers (exact), else the index's total_size (bytes,
    taken as bf16); None when neither is there."""
    import math
    import struct

    total = 0
    for f in sorted(path.glob("*.safetensors")):
        with open(f, "rb") as fh:  # 8-byte header length, then a JSON header of dtype/shape per tensor
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        total += sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__")
    if total:
        return float(total)
    index = path / "model.safetensors.index.json"
    if index.is_file():
        size = json.loads(index.read_text()).get("metadata", {}).get("total_size")
        return size / BF16 if size else None
    return None


def role_dir(cfg: dict, name: str) -> Path | None:
    """Where a role's config.json is now, without network: the hub cache's snapshot, a local directory, a model the
    DAG made. None when not there yet."""
    from medbridge.models.registry import made_model_dir

    spec = cfg["models"].get(name) or {"source": "grpo"}
    if spec["source"] == "local":
        return Path(spec["path"])
    if spec["source"] == "hub":
        try:
            from huggingface_hub import snapshot_download

            from medbridge.hub import cache_dir

            return Path(
                snapshot_download(
                    spec["id"], revision=spec.get("revision"), cache_dir=cache_dir(cfg), local_files_only=True
                )
            )
        except Exception:  # not fetched yet (or no hub library state): fall back to the config's numbers
            return None
    return made_model_dir(cfg, name)


def arch_of(cfg: dict, name: str, vision_params: float) -> Arch | None:
    """A role's Arch: its config.json when readable, else its `memory` keys; a trained model has its init's."""
    from medbridge.artifacts.rq3 import model_spec

    if name not in cfg["models"] and (grid := model_spec(cfg, name)):  # an RQ3 grid model: its init's architecture
        return arch_of(cfg, grid["init"], vision_params)
    spec = cfg["models"][name]
    where = role_dir(cfg, name)
    found = arch_from_dir(where, vision_params) if where else None
    if found:
        return found
    mem = spec.get("memory")
    if mem:
        return Arch(
            mem["params_b"] * 1e9, mem["kv_kib_per_token"] * 1024, mem["largest_tensor_m"] * 1e6, mem.get("context")
        )
    if spec["source"] == "tiny":
        return arch_from_text_config(cfg["tiny_model"], None, 0.0)
    if spec["source"] in ("sft", "grpo"):
        return arch_of(cfg, spec["init"], vision_params)
    return None


# ---- per-GPU memory ------------------------------------------------------------------------------------------------


def vllm_engine(arch: Arch, context: int, tp: int, util: float, card_gib: float, overhead_gib: float) -> dict:
    """GiB of one vLLM engine's share on each of its `tp` GPUs, and what its KV cache must hold."""
    weights = arch.params * BF16 / GIB / tp
    kv_need = arch.kv_bytes_per_token * context / GIB / tp
    share = util * card_gib
    return {
        "share": share,
        "weights": weights,
        "overhead": overhead_gib,
        "kv_needed": kv_need,
        "kv_left": share - weights - overhead_gib,
        "context": context,
    }


def training(
    arch: Arch, section: dict, gpus: int, refs: int, ema: str | None, activation_gib: float, live_params_b: float
) -> dict:
    """GiB per GPU of a ZeRO-3 training process over `gpus` GPUs (a single process when gpus is 1)."""
    bf16 = section["bf16"]
    weight_b, grad_b = (BF16, BF16) if bf16 else (4, 4)
    optim = OPTIMIZER_BYTES.get(section.get("optim", "adamw_torch"), 12)
    if optim == 4 and section.get("momentum"):
        optim = 8  # SGD's momentum buffer
    if not bf16:
        optim -= 4  # no separate fp32 master copy
    p = arch.params
    out = {
        "states": p * (weight_b + grad_b + optim) / gpus / GIB,
        "live params": min(live_params_b * 1e9, p) * weight_b / GIB if gpus > 1 else 0.0,
        "references": refs * p * BF16 / gpus / GIB,
    }
    ema_gib = 0.0
    if ema == "model":  # both whole models gathered on every GPU
        ema_gib = 2 * p * BF16 / GIB
    elif ema == "parameter":
        ema_gib = 2 * arch.largest * BF16 / GIB
    out["activations | EMA update"] = max(activation_gib, ema_gib)  # the update runs between steps
    return out


# ---- checkpoint disk -----------------------------------------------------------------------------------------------


def checkpoint_gb(arch: Arch, section: dict) -> float:
    """GB of one Trainer checkpoint: the bf16 weights and, unless save_only_model, the optimizer states (ZeRO-3's
    fp32 master weights and moments)."""
    weights = arch.params * BF16
    if section["save_only_model"]:
        return weights / 1e9
    optim = OPTIMIZER_BYTES.get(section.get("optim", "adamw_torch"), 12) + (4 if section.get("momentum") else 0)
    return (weights + arch.params * optim) / 1e9


def refuse(problems: list[str]) -> None:
    if problems:
        raise MedbridgeError("the plan does not fit its GPUs:\n  " + "\n  ".join(problems))


# ---- a config's GPU jobs -------------------------------------------------------------------------------------------


def memory_plan(cfg: dict, a, gpus: dict[str, int], card_gib: float, roles: dict[str, list[str]]):
    """(rows, problems, notes): per GPU rule, the per-GPU GiB of its largest job by part, and what does not fit, each
    naming the key to change. `roles`: rule -> the model roles its jobs load; `a`: medbridge.plan.Assumptions."""
    from medbridge.engine import max_model_len

    ev, rows, problems, unknown = cfg["evaluate"], [], [], set()

    def arch(name):
        found = arch_of(cfg, name, a.vision_params_b * 1e9)
        if found is None:
            unknown.add(name)
        return found

    def engine_row(rule, name, purpose, tp, util, util_key, where):
        m = arch(name)
        if m is None:
            return
        ctx = max_model_len(cfg, purpose)
        e = vllm_engine(m, ctx, tp, util, card_gib, a.vllm_overhead_gib)
        need = e["weights"] + e["overhead"] + e["kv_needed"]
        rows.append(
            {
                "rule": rule,
                "job": name,
                "gpus": tp,
                "needs_gib": need,
                "has_gib": e["share"],
                "parts": {
                    "vLLM weights": e["weights"],
                    "vLLM overhead": e["overhead"],
                    f"KV for {ctx} tokens": e["kv_needed"],
                },
            }
        )
        if e["kv_left"] < e["kv_needed"]:
            problems.append(
                (
                    rule,
                    name,
                    f"vLLM's KV cache must hold one {ctx}-token request ({e['kv_needed']:.1f} "
                    f"GiB per GPU) but {util:g} x {card_gib:g} GiB leaves {max(e['kv_left'], 0):.1f} GiB "
                    f"beside the weights; raise {util_key}, lower the context ({where}) or use more GPUs",
                )
            )

    if ev.get("backend") == "vllm":
        util = ev["gpu_memory_utilization"]
        for rule in ("generate", "generate_part"):  # the rule that holds the engine: generate_part with job_hours
            for name in roles.get(rule, []):
                engine_row(
                    rule,
                    name,
                    "generate",
                    ev["tensor_parallel_size"],
                    util,
                    "evaluate.gpu_memory_utilization",
                    "evaluate.max_images / max_pixels / max_new_tokens",
                )
        for rule, purpose in (("score", "judge"), ("pmc_label", "label")):
            for name in roles.get(rule, []):
                tp = ev.get("judge_tensor_parallel_size") or gpus.get(rule, 1)
                engine_row(
                    rule,
                    name,
                    purpose,
                    tp,
                    util,
                    "evaluate.gpu_memory_utilization",
                    "evaluate.max_prompt_tokens / max_new_tokens",
                )
    train = cfg["train"]
    for kind, rule in (("sft", "sft_model"), ("grpo", "grpo_model")):
        section = train[kind]
        for name in roles.get(rule, []):
            m = arch(name)
            if m is None:
                continue
            n = gpus.get(rule, 1) if train.get("accelerate_config") else 1
            care = kind == "grpo" and section["care"]["enabled"]
            ema = care and section["care"]["ema"] == "ema"  # frozen: never updated
            refs = int(care or (kind == "grpo" and section["beta"] > 0))
            parts = training(
                m, section, n, refs, CARE_EMA_GATHER if ema else None, a.train_activation_gib, a.zero3_live_params_b
            )
            has, vllm_key = card_gib, None
            if kind == "grpo" and section["use_vllm"] and section["vllm_mode"] == "colocate":
                util = section["vllm_gpu_memory_utilization"]
                vllm_key = "train.grpo.vllm_gpu_memory_utilization"
                engine_row(
                    rule + " (vLLM)",
                    name,
                    "grpo",
                    1,
                    util,
                    vllm_key,
                    "train.grpo.max_images / max_pixels / max_prompt_tokens / max_completion_length",
                )
                has = (1 - util) * card_gib  # the rest of the card is the engine's
            need = sum(parts.values())
            rows.append({"rule": rule, "job": name, "gpus": n, "needs_gib": need, "has_gib": has, "parts": parts})
            if need > has:
                keys = [f"train.{kind}.optim (sgd)", "more GPUs (ZeRO-3 shards the states)"]
                if vllm_key:
                    keys.insert(0, f"lower {vllm_key}")
                if ema and CARE_EMA_GATHER == "model":
                    keys.insert(
                        0,
                        "the CARE EMA update gathers both whole models (update one parameter pair at a "
                        "time: medbridge.train.grpo)",
                    )
                problems.append(
                    (
                        rule,
                        name,
                        f"{need:.1f} GiB per GPU ({', '.join(f'{k} {v:.1f}' for k, v in parts.items())}) "
                        f"> {has:.1f} GiB; change: {'; '.join(keys)}",
                    )
                )
    notes = [f"memory of {sorted(unknown)} not checked: no config.json in the hub cache and no models.<role>.memory"]
    worst: dict[str, dict] = {}
    for r in rows:  # one row per rule: its largest job
        if r["rule"] not in worst or r["needs_gib"] > worst[r["rule"]]["needs_gib"]:
            worst[r["rule"]] = r
    jobs: dict[str, list[str]] = {}
    for rule, name, text in problems:  # one line per distinct problem, naming every job it hits
        jobs.setdefault(f"{rule} {{}}: {text}", []).append(name)
    return list(worst.values()), [k.format(", ".join(v)) for k, v in jobs.items()], (notes if unknown else [])


def disk_plan(cfg: dict, a, runs: dict[str, list[str]]) -> list[dict]:
    """Per training rule: GB of one checkpoint, kept per run (save_total_limit 2), runs, and the most all runs hold
    at once if they run together (checkpoints only when save_steps is set)."""
    out = []
    for kind, rule in (("sft", "sft_model"), ("grpo", "grpo_model")):
        section = cfg["train"][kind]
        names = runs.get(rule, [])
        archs = [m for m in (arch_of(cfg, n, a.vision_params_b * 1e9) for n in names) if m]
        if not section.get("save_steps") or not archs:
            continue
        each = max(checkpoint_gb(m, section) for m in archs)
        out.append(
            {
                "rule": rule,
                "checkpoint_gb": each,
                "kept": 2,
                "runs": len(names),
                "all_runs_gb": 2 * each * len(names),
                "save_only_model": section["save_only_model"],
            }
        )
    return out
