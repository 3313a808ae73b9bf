"""The sizes a plan's costs are made of, read from the config: split and subset sizes, eval sets per model, training
prompts per task, image tokens and model parameters. No throughputs here (medbridge.plan.costs turns these into
GPU-seconds)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from medbridge import MedbridgeError
from medbridge.data.medmnist import dataset_info, medmnist_info
from medbridge.evalsets import dataset_split, samples_per_item

PATCH = 14  # Qwen2.5-VL: 14 px ViT patches, merged 2x2 into one LLM token (28 px)
MERGE = 2


def split_size(cfg: dict, flag: str, split: str) -> int:
    """Images in one split: the synthetic twin's configured size, or the real file's size from medmnist's INFO."""
    data = cfg["data"]
    if data["source"] == "synthetic":
        return data["synthetic"][f"n_{split}"]
    return medmnist_info()[flag]["n_samples"][split]


def n_items(cfg: dict, flag: str, split: str, per_class: int | None) -> int:
    """MCQ items (or probe images) drawn from a split: at most per_class per class, at most the split's size."""
    size = split_size(cfg, flag, split)
    return size if per_class is None else min(per_class * dataset_info(flag).n_classes, size)


def smallest_class(cfg: dict, flag: str, split: str, count_files: bool = True) -> tuple[int, str]:
    """(images of the split's smallest class under the MCQ rule, how it is known): counted from the data file when
    it exists and `count_files`, else the synthetic twin's round-robin size, the paper's denominators (test splits they
    give), or the upper bound size / classes (said in the plan's notes)."""
    import numpy as np

    from medbridge.artifacts.reference import SMALLEST_TEST_CLASS
    from medbridge.config import run_dir
    from medbridge.data.mcq import class_names, class_of
    from medbridge.data.medmnist import load_split, npz_name

    chest = cfg["mcq"]["chestmnist"]
    root = Path(cfg["data"].get("root") or run_dir(cfg) / "data" / "medmnist")
    path = root / npz_name(flag, cfg["data"]["size"])
    if count_files and path.exists():
        classes = class_of(flag, load_split(path, flag, split)[1], chest)
        counts = np.bincount(classes[classes >= 0])
        return int(counts[counts > 0].min()), "counted"
    if cfg["data"]["source"] == "synthetic":  # labels round-robin over medmnist's classes (chest: an upper bound)
        return split_size(cfg, flag, split) // dataset_info(flag).n_classes, "synthetic"
    if split == "test" and flag in SMALLEST_TEST_CLASS:
        return SMALLEST_TEST_CLASS[flag], "paper"
    return split_size(cfg, flag, split) // len(class_names(flag, chest)), "bound"


def eval_items(cfg: dict, flag: str, split: str, count_files: bool = True) -> tuple[int, str]:
    """(items of a dataset's balanced eval subset on `split`, how the count is known): per_class per class
    (medbridge.evalsets.eval_per_class; capped by the smallest class), or without it all of the smallest class and
    as many of every other (the paper's subsets); classes as the MCQ rule makes them (ChestMNIST: mcq.chestmnist)."""
    from medbridge.data.mcq import class_names
    from medbridge.evalsets import eval_per_class

    mcq = cfg["mcq"]
    n_classes = len(class_names(flag, mcq["chestmnist"]))
    per_class = eval_per_class(cfg, split)
    if per_class is not None and mcq["balance"] == "capped":
        return min(per_class * n_classes, split_size(cfg, flag, split)), "per_class"
    smallest, how = smallest_class(cfg, flag, split, count_files)
    if per_class is None:
        return n_classes * smallest, how
    if how == "bound":  # at most per_class of each class, at most the split
        return min(per_class * n_classes, split_size(cfg, flag, split)), "per_class"
    return n_classes * min(per_class, smallest), how


def image_tokens(size: int, min_pixels: int | None, max_pixels: int | None) -> int:
    """LLM tokens of one size x size image after Qwen2.5-VL's resize to the pixel bounds (the library's own rule)."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    bounds = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v}
    h, w = smart_resize(size, size, factor=PATCH * MERGE, **bounds)
    return (h // (PATCH * MERGE)) * (w // (PATCH * MERGE))


_SIZE_IN_NAME = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)[Bb](?![A-Za-z])")


class EvalSet(NamedTuple):
    """One eval set a model answers: the paper part that reads it first, its items, image tokens per item and
    samples per item (besides the greedy answer)."""

    part: str
    items: int
    image_tokens: int
    samples: int


class Sizes:
    """The config's sizes, each read once; `notes` collects what was assumed or left out, for the reader.
    `reference_params_b` is the size assumed for a model whose size nothing says; `count_files` False: eval subsets
    sized from the config and the paper alone, never from data files (what the DAG's generate parts are split by)."""

    def __init__(self, cfg: dict, model_sizes: dict[str, float], reference_params_b: float, count_files: bool = True):
        self.cfg, self.overrides, self.reference_params_b = cfg, model_sizes, reference_params_b
        self.count_files = count_files
        self.notes: list[str] = []
        self._params: dict[str, float] = {}
        ev = cfg["evaluate"]
        self.mcq_image_tokens = image_tokens(cfg["data"]["size"], ev.get("min_pixels"), ev.get("max_pixels"))
        # VQA images vary in size; under a min_pixels bound none has fewer tokens than an image of exactly that size
        side = int(ev["min_pixels"] ** 0.5) if ev.get("min_pixels") else cfg["data"]["size"]
        self.vqa_image_tokens = image_tokens(side, ev.get("min_pixels"), ev.get("max_pixels"))

    # -- models --

    def params_b(self, name: str) -> float:
        """Billions of parameters of a model role (or a DAG-made `rq3-<init>-<task>` model)."""
        if name not in self._params:
            self._params[name] = self._read_params_b(name)
        return self._params[name]

    def _read_params_b(self, name: str) -> float:
        if name in self.overrides:
            return self.overrides[name]
        from medbridge.artifacts.rq3 import model_spec

        spec = model_spec(self.cfg, name)  # a role, or an RQ3 grid model (a grpo run from its init)
        if spec is None:
            raise MedbridgeError(f"no model role {name!r} in the config; defined roles: {sorted(self.cfg['models'])}")
        if spec["source"] in ("sft", "grpo"):
            return self.params_b(spec["init"])
        if spec["source"] == "tiny":
            t = self.cfg["tiny_model"]
            h, i, layers = t["hidden_size"], t["intermediate_size"], t["num_hidden_layers"]
            return (t["vocab_size"] * h + layers * (4 * h * h + 3 * h * i)) / 1e9
        for where in (spec.get("id"), spec.get("processor"), spec.get("path")):  # e.g. Qwen/Qwen2.5-VL-7B-Instruct
            found = _SIZE_IN_NAME.findall(where or "")
            if found:
                return float(found[-1])
        self.notes.append(
            f"size of model {name!r} is not in its name: assumed {self.reference_params_b:g}B "
            f"(pass --model-size {name}=<billions>)"
        )
        return self.reference_params_b

    def sft_roles(self) -> list[str]:
        return [r for r, s in self.cfg["models"].items() if s["source"] == "sft"]

    def rq3_models(self) -> list[tuple[str, str]]:
        """(model, task) of the RQ3 grid's trained models."""
        from medbridge.artifacts.rq3 import rq3_models

        return [(name, spec["task"]) for name, spec in rq3_models(self.cfg).items()]

    def grpo_runs(self) -> list[tuple[str, str]]:
        """(model, task) of every GRPO training run: the grpo roles, then the RQ3 grid's."""
        runs = [(r, s.get("task")) for r, s in self.cfg["models"].items() if s["source"] == "grpo"] + self.rq3_models()
        return list(dict.fromkeys(runs))  # a role that is also a grid model (the tiny `rl`) trains once

    # -- items --

    def items(self, evalset: str) -> int | None:
        """Items of an eval set: a MedMNIST dataset's balanced MCQ subset on its split, or a Table 3 benchmark's item
        cap (its own max_items, else vqa.max_items; an upper bound: a benchmark may have fewer usable rows)."""
        vqa = self.cfg.get("vqa") or {}
        where = dataset_split(evalset, self.cfg)
        if where:
            n, how = eval_items(self.cfg, *where, self.count_files)
            note = (
                f"{evalset}: the smallest class of {where[0]}'s {where[1]} split is unknown without its data "
                f"file; priced at the bound of {n} items (classes x split size / classes)"
            )
            if how == "bound" and note not in self.notes:
                self.notes.append(note)
            return n
        entry = next((b for b in vqa.get("benchmarks", []) if b["name"] == evalset), {})
        return entry.get("max_items", vqa.get("max_items"))

    def train_prompts(self, task: str) -> int | None:
        """Training items of an RL/SFT task: a MedMNIST train split's items, or the balanced PMC-VQA subset."""
        mcq = self.cfg["mcq"]
        if task in self.cfg["data"]["datasets"]:
            return n_items(self.cfg, task, "train", mcq.get("train_per_class", mcq.get("per_class")))
        return ((self.cfg.get("vqa") or {}).get("pmc") or {}).get("subset_size")

    def eval_jobs(self) -> list[tuple[str, str, str]]:
        """(part, model, eval set) of every generation, the pairs the DAG generates (medbridge.evalsets), each under
        the first part that reads it: RQ2 (evaluated models x datasets), the recipe (their validation subsets), RQ3
        (the grid's trained models x their transfer targets), Table 3 (its models x benchmarks)."""
        from medbridge.evalsets import evalset_pairs, recipe_pairs

        cfg = self.cfg
        rq2 = {(m, d) for m in cfg["evaluate"]["models"] for d in cfg["data"]["datasets"]}
        recipe = set(recipe_pairs(cfg)) if cfg.get("recipe") else set()

        def part(model: str, evalset: str) -> str:
            if dataset_split(evalset, cfg) is None:
                return "Table 3"
            return "RQ2" if (model, evalset) in rq2 else "recipe" if (model, evalset) in recipe else "RQ3"

        return [(part(m, e), m, e) for m, e in evalset_pairs(cfg)]

    def eval_sets(self) -> dict[str, list[EvalSet]]:
        """model -> the eval sets it answers, in one generation job (and one score job) per model. Eval sets without
        a known item count are left out and noted."""
        out: dict[str, list[EvalSet]] = {}
        unknown: dict[str, set] = {}
        for part, model, evalset in self.eval_jobs():
            n = self.items(evalset)
            if n is None:
                unknown.setdefault(part, set()).add(evalset)
                continue
            img = self.vqa_image_tokens if part == "Table 3" else self.mcq_image_tokens
            out.setdefault(model, []).append(EvalSet(part, n, img, samples_per_item(evalset, self.cfg)))
        for part, sets in unknown.items():
            self.notes.append(f"{part}: no item cap (vqa.max_items) for {sorted(sets)}: those jobs not counted")
        return out
