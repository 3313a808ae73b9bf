"""Generation backends behind one interface, looked up by name (config `evaluate.backend`).

A backend is built from (cfg, model name) and answers `generate(items, n_samples, seed) -> list[Completion]`, one
per item, in item order: the greedy text and `n_samples` sampled texts, from the item's chat prompt with the
assistant turn opened (add_generation_prompt=True).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from medbridge import MedbridgeError

BACKENDS = {"hf": "medbridge.generate.hf:HFBackend", "vllm": "medbridge.generate.vllm:VLLMBackend"}


@dataclass
class Completion:
    greedy: str
    samples: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SamplingSettings:
    """Every knob of a generation call, explicit: a backend applies exactly these and nothing from the checkpoint's
    own `generation_config.json` (Qwen2.5-VL ships top_k 1, top_p 0.001, temperature 0.1, repetition_penalty 1.05,
    which would turn the n "samples" into near-copies of the greedy answer). Greedy calls use only max_new_tokens
    and repetition_penalty; sampled calls use all of them. Written into every generations row (`settings`)."""

    n_samples: int
    temperature: float
    top_p: float
    max_new_tokens: int
    prompt: str  # which prompt template: eval | rl
    top_k: int = 0  # 0 = off (every token is a candidate)
    repetition_penalty: float = 1.0  # 1.0 = off

    @classmethod
    def from_config(cls, cfg: dict, n_samples: int | None = None) -> SamplingSettings:
        ev = cfg["evaluate"]
        return cls(
            n_samples=ev["n_samples"] if n_samples is None else n_samples,
            temperature=ev["temperature"],
            top_p=ev["top_p"],
            max_new_tokens=ev["max_new_tokens"],
            prompt=ev["prompt"],
            top_k=ev["top_k"],
            repetition_penalty=ev["repetition_penalty"],
        )


def get_backend(name: str):
    """The backend class registered under `name` (imported only when asked for: vLLM is a GPU-only extra)."""
    if name not in BACKENDS:
        raise MedbridgeError(f"unknown generation backend {name!r}; choose one of {sorted(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def item_seed(seed: int, item_id: str) -> int:
    """A per-item sampling seed that does not depend on batch composition or order."""
    import zlib

    return (seed * 1_000_003 + zlib.crc32(item_id.encode())) % (2**31 - 1)
