"""Which eval sets each model answers: every (model, eval set) pair an artifact reads, grouped by model, so the DAG
runs one generation job (one model load) and one scoring job (one judge load) per model."""

from __future__ import annotations


def evalset_pairs(cfg: dict) -> list[tuple[str, str]]:
    """(model, eval set) pairs read by Table 2, Figure 1, the recipe (evaluate.models x datasets), the RQ3 grid and
    Table 3 (vqa.models x benchmarks), in a stable order without repeats."""
    from medbridge.artifacts.rq3 import rq3_inputs
    from medbridge.data.vqa import benchmark_names

    pairs = [(m, d) for m in cfg["evaluate"]["models"] for d in cfg["data"]["datasets"]]
    pairs += rq3_inputs(cfg)
    pairs += [(m, b) for m in cfg.get("vqa", {}).get("models", []) for b in benchmark_names(cfg)]
    return list(dict.fromkeys(pairs))


def evalsets_by_model(cfg: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for model, evalset in evalset_pairs(cfg):
        out.setdefault(model, []).append(evalset)
    return out
