"""Which eval sets each model answers: every (model, eval set) pair an artifact reads, grouped by model, so the DAG
runs one generation job (one model load) and one scoring job (one judge load) per model."""

from __future__ import annotations

from medbridge.config import schema_default


def split_evalset(dataset: str, split: str, cfg: dict) -> str:
    """The eval set name of a MedMNIST dataset's MCQ items on `split`: the dataset itself on mcq.eval_split (Table 2,
    RQ3), `<dataset>-<split>` on another split (the recipe's validation subsets)."""
    return dataset if split == cfg["mcq"]["eval_split"] else f"{dataset}-{split}"


def dataset_split(evalset: str, cfg: dict) -> tuple[str, str] | None:
    """(dataset, split) of a MedMNIST eval set name, None for a Table 3 benchmark."""
    for split in ("train", "val", "test"):
        dataset = evalset.removesuffix(f"-{split}")
        if dataset != evalset and dataset in cfg["data"]["datasets"]:
            return dataset, split
    return (evalset, cfg["mcq"]["eval_split"]) if evalset in cfg["data"]["datasets"] else None


def eval_per_class(cfg: dict, split: str) -> int | None:
    """Items per class of a balanced eval subset on `split`: mcq.per_class on mcq.eval_split (absent: all of the
    smallest class, the paper's subsets); on another split (the recipe's validation subsets, "a small validation
    set") recipe.per_class when set, else the same."""
    mcq = cfg["mcq"]
    if split != mcq["eval_split"] and (cfg.get("recipe") or {}).get("per_class") is not None:
        return cfg["recipe"]["per_class"]
    return mcq.get("per_class")


def samples_per_item(evalset: str, cfg: dict) -> int:
    """Samples per item besides the greedy answer: Pass@K needs evaluate.n_samples on MedMNIST; Table 3 reports
    greedy accuracy (vqa.n_samples, default 0)."""
    if dataset_split(evalset, cfg):
        return cfg["evaluate"]["n_samples"]
    return cfg["vqa"]["n_samples"] if "vqa" in cfg else schema_default("vqa.n_samples")


def recipe_pairs(cfg: dict) -> list[tuple[str, str]]:
    """(model, eval set) pairs the recipe diagnoses: evaluate.models on every dataset's recipe.split subset."""
    recipe = cfg["recipe"]
    split = recipe["split"] if "split" in recipe else cfg["mcq"]["eval_split"]
    return [(m, split_evalset(d, split, cfg)) for m in cfg["evaluate"]["models"] for d in cfg["data"]["datasets"]]


def evalset_pairs(cfg: dict) -> list[tuple[str, str]]:
    """(model, eval set) pairs read by Table 2, Figure 1 (evaluate.models x datasets), the recipe, the RQ3 grid and
    Table 3 (vqa.models x benchmarks), in a stable order without repeats."""
    from medbridge.artifacts.rq3 import rq3_inputs
    from medbridge.data.vqa import benchmark_names

    pairs = [(m, d) for m in cfg["evaluate"]["models"] for d in cfg["data"]["datasets"]]
    pairs += recipe_pairs(cfg) if cfg.get("recipe") else []
    pairs += rq3_inputs(cfg)
    pairs += [(m, b) for m in (cfg["vqa"]["models"] if "vqa" in cfg else []) for b in benchmark_names(cfg)]
    return list(dict.fromkeys(pairs))


def evalsets_by_model(cfg: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for model, evalset in evalset_pairs(cfg):
        out.setdefault(model, []).append(evalset)
    return out
