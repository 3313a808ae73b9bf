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
    n_samples: int
    temperature: float
    top_p: float
    max_new_tokens: int
    prompt: str  # which prompt template: eval | rl

    @classmethod
    def from_config(cls, cfg: dict, n_samples: int | None = None) -> SamplingSettings:
        ev = cfg["evaluate"]
        return cls(ev["n_samples"] if n_samples is None else n_samples, ev.get("temperature", 0.7), ev.get("top_p", 0.9), ev.get("max_new_tokens", 2048),
                   ev.get("prompt", "eval"))  # fmt: skip


def get_backend(name: str):
    """The backend class registered under `name` (imported only when asked for: vLLM is a GPU-only extra)."""
    if name not in BACKENDS:
        raise MedbridgeError(f"unknown generation backend {name!r}; choose one of {sorted(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def item_seed(seed: int, item_id: str) -> int:
    """A per-item sampling seed that does not depend on batch composition or order."""
    import zlib

    return (seed * 1_000_003 + zlib.crc32(item_id.encode())) % (2**31 - 1)
