"""What a run will cost before it runs: per GPU rule, its jobs, the GPU-hours they should spend and the GPU-hours
their SLURM requests book.

Jobs follow the config the way the DAG makes them: one `generate` and one `score` job per model over all its eval sets
(medbridge.evalsets: RQ2 models x datasets and their validation subsets for the recipe, the RQ3 grid's trained
models x their transfer targets, Table 3's models x benchmarks), one `features` job per model, one training job
per trained model, one `pmc_label` job. Work comes from the config's sizes:
MCQ items (per_class x the dataset's classes, capped by the split's size; without per_class, classes x the smallest
class: counted from the data file, else known from the paper's denominators, else bounded), samples per
item, token budgets, image tokens (Qwen2.5-VL's resize under the configured pixel bounds) and model sizes (from the
hub id, e.g. "7B"). Each job also pays fixed costs: loading its model (and the judge), starting vLLM where the backend
is vLLM. GRPO rollouts are priced as they run: each GPU decodes `batch_size` rollouts at once and every GPU waits for
the longest completion of the step, at small-batch decode latency (not the throughput of a full vLLM batch).

Turning work into time needs throughputs, which are assumptions, not measurements: they are the `Assumptions` fields
below, each documented and overridable on the command line (`medbridge plan --help`). Two estimates: "typical" (mean
completion = completion_fraction x the token budget; the longest GRPO rollout = longest_fraction x it) and "at
budget" (every completion runs to its budget). Beside them: "booked", the GPU-hours the profile reserves (runtime x
GPUs x jobs, the most a run can be charged), and, where a run has left Snakemake benchmark files
(results/<run>/benchmarks/<rule>/<wildcards>.tsv), "calibrated": the estimate scaled by measured / estimated of the
jobs measured.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from medbridge import MedbridgeError, plan_memory
from medbridge.data.medmnist import dataset_info, medmnist_info
from medbridge.evalsets import dataset_split, samples_per_item

PATCH = 14  # Qwen2.5-VL: 14 px ViT patches, merged 2x2 into one LLM token (28 px)
MERGE = 2


def _assumption(default: float, help_: str):
    return field(default=default, metadata={"help": help_})


@dataclass(frozen=True)
class Assumptions:
    decode_tokens_per_s: float = _assumption(
        2500.0,
        "generated tokens/s of one GPU for a `reference_params_b` model under vLLM with many sequences in flight "
        "(H100-class; memory-bound, so it scales as 1/model size)",
    )
    hf_decode_tokens_per_s: float = _assumption(
        300.0, "the same under the HF backend (transformers generate, static batches of evaluate.batch_size)"
    )
    decode_latency_ms: float = _assumption(
        30.0,
        "ms per generated token of one small batch at `reference_params_b` (GRPO rollouts: batch_size per GPU); "
        "scales with model size",
    )
    prefill_tflops: float = _assumption(
        400.0, "effective TFLOP/s of one GPU on compute-bound inference (prompts, images, vision tower)"
    )
    train_tflops: float = _assumption(
        250.0, "effective TFLOP/s of one GPU while training (forward + backward, ZeRO-3 overheads included)"
    )
    completion_fraction: float = _assumption(
        0.25, "mean completion length as a fraction of its token budget (the 'typical' column)"
    )
    longest_fraction: float = _assumption(
        0.6, "longest of a GRPO step's rollouts as a fraction of max_completion_length (the 'typical' column)"
    )
    judge_fraction: float = _assumption(0.1, "share of responses the VLM judge re-reads (no clean <answer> tag)")
    prompt_tokens: int = _assumption(150, "text tokens of one MCQ prompt (question, options, instructions, template)")
    judge_output_tokens: int = _assumption(16, "tokens the judge writes per verdict")
    sft_target_tokens: int = _assumption(64, "tokens of one SFT target answer")
    vision_params_b: float = _assumption(
        0.675, "parameters (billions) of the vision tower (Qwen2.5-VL's ViT, the same at 3B/7B/32B/72B)"
    )
    reference_params_b: float = _assumption(7.0, "model size (billions) at which the throughputs hold")
    load_s_per_b: float = _assumption(
        6.0, "seconds to load one billion parameters (bf16 safetensors from the hub cache on shared storage)"
    )
    vllm_start_s: float = _assumption(90.0, "seconds vLLM needs to start (profiling, KV cache, CUDA graphs)")
    vllm_overhead_gib: float = _assumption(
        2.5, "GiB per GPU a vLLM engine holds beside weights and KV cache (its profiling run's activations, CUDA graphs)"
    )
    train_activation_gib: float = _assumption(
        6.0, "GiB per GPU of a training step's activations and logits (gradient checkpointing on)"
    )
    zero3_live_params_b: float = _assumption(
        1.0, "parameters (billions) ZeRO-3 keeps gathered at once (DeepSpeed's stage3_max_live_parameters, 1e9)"
    )
    pmc_questions: int = _assumption(
        176948, "PMC-VQA training questions the judge labels without vqa.pmc.pool_size (PMC-VQA's train.csv)"
    )


@dataclass
class Job:
    """One planned job: its key (the wildcards of its benchmark file), GPUs, GPU-seconds of work and fixed costs."""

    key: str
    gpus: int
    work_s: float  # GPU-seconds, typical
    work_budget_s: float  # GPU-seconds, every completion at its budget
    fixed_s: float  # wall seconds of model loads and engine starts (every GPU of the job waits: x gpus)
    parts: tuple[str, ...] = ()

    @property
    def typical_gpu_s(self) -> float:
        return self.work_s + self.fixed_s * self.gpus

    @property
    def budget_gpu_s(self) -> float:
        return self.work_budget_s + self.fixed_s * self.gpus


# ---- sizes from the config ----------------------------------------------------------------------------------------


def split_size(cfg: dict, flag: str, split: str) -> int:
    """Images in one split: the synthetic twin's configured size, or the real file's size from medmnist's INFO."""
    data = cfg["data"]
    if data["source"] == "synthetic":
        defaults = {"train": 160, "val": 32, "test": 64}  # medbridge.commands.data's defaults
        return data.get("synthetic", {}).get(f"n_{split}", defaults[split])
    return medmnist_info()[flag]["n_samples"][split]


def n_items(cfg: dict, flag: str, split: str, per_class: int | None) -> int:
    """MCQ items (or probe images) drawn from a split: at most per_class per class, at most the split's size."""
    size = split_size(cfg, flag, split)
    return size if per_class is None else min(per_class * dataset_info(flag).n_classes, size)


def smallest_class(cfg: dict, flag: str, split: str, count_files: bool = True) -> tuple[int, str]:
    """(images of the split's smallest class under the MCQ rule, how it is known): counted from the data file when
    it exists, else the synthetic twin's round-robin size, the paper's denominators (test splits they give), or the
    upper bound size / classes (said in the plan's notes)."""
    import numpy as np

    from medbridge.artifacts.reference import SMALLEST_TEST_CLASS
    from medbridge.config import run_dir
    from medbridge.data.mcq import class_of, class_names
    from medbridge.data.medmnist import load_split, npz_name

    chest = cfg["mcq"].get("chestmnist", "with_no_finding")
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

    mcq = cfg["mcq"]
    n_classes = len(class_names(flag, mcq.get("chestmnist", "with_no_finding")))
    from medbridge.evalsets import eval_per_class

    per_class = eval_per_class(cfg, split)
    if per_class is not None and mcq.get("balance", "equal") == "capped":
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


class _Planner:
    """The estimate of one config; `notes` collects what was assumed or left out, for the reader."""

    def __init__(self, cfg: dict, a: Assumptions, model_sizes: dict[str, float], gpus: dict[str, int],
                 count_files: bool = True):  # fmt: skip
        self.cfg, self.a, self.overrides, self.gpus, self.count_files = cfg, a, model_sizes, gpus, count_files
        self.notes: list[str] = []
        self._sizes: dict[str, float] = {}
        ev = cfg["evaluate"]
        self.mcq_image_tokens = image_tokens(cfg["data"]["size"], ev.get("min_pixels"), ev.get("max_pixels"))
        # VQA images vary in size; under a min_pixels bound none has fewer tokens than an image of exactly that size
        side = int(ev["min_pixels"] ** 0.5) if ev.get("min_pixels") else cfg["data"]["size"]
        self.vqa_image_tokens = image_tokens(side, ev.get("min_pixels"), ev.get("max_pixels"))

    # -- sizes --

    def params_b(self, name: str) -> float:
        """Billions of parameters of a model role (or a DAG-made `rq3-<init>-<task>` model)."""
        if name not in self._sizes:
            self._sizes[name] = self._params_b(name)
        return self._sizes[name]

    def _params_b(self, name: str) -> float:
        if name in self.overrides:
            return self.overrides[name]
        if name.startswith("rq3-"):
            return self.params_b(name[len("rq3-") :].rsplit("-", 1)[0])  # rq3-<init>-<task>; tasks have no "-"
        spec = self.cfg["models"].get(name)
        if spec is None:
            raise MedbridgeError(f"no model role {name!r} in the config; defined roles: {sorted(self.cfg['models'])}")
        if spec["source"] in ("sft", "grpo"):
            return self.params_b(spec["init"])
        if spec["source"] == "tiny":
            t = self.cfg.get("tiny_model", {})
            h, i, layers = t.get("hidden_size", 64), t.get("intermediate_size", 128), t.get("num_hidden_layers", 2)
            return (t.get("vocab_size", 640) * h + layers * (4 * h * h + 3 * h * i)) / 1e9
        for where in (spec.get("id"), spec.get("processor"), spec.get("path")):  # e.g. Qwen/Qwen2.5-VL-7B-Instruct
            found = _SIZE_IN_NAME.findall(where or "")
            if found:
                return float(found[-1])
        self.notes.append(f"size of model {name!r} is not in its name: assumed {self.a.reference_params_b:g}B "
                          f"(pass --model-size {name}=<billions>)")  # fmt: skip
        return self.a.reference_params_b

    def items(self, evalset: str) -> int | None:
        """Items of an eval set: a MedMNIST dataset's balanced MCQ subset on its split, or a Table 3 benchmark's item
        cap (its own max_items, else vqa.max_items; an upper bound: a benchmark may have fewer usable rows)."""
        mcq, vqa = self.cfg["mcq"], self.cfg.get("vqa") or {}
        where = dataset_split(evalset, self.cfg)
        if where:
            n, how = eval_items(self.cfg, *where, self.count_files)
            note = (f"{evalset}: the smallest class of {where[0]}'s {where[1]} split is unknown without its data "
                    f"file; priced at the bound of {n} items (classes x split size / classes)")  # fmt: skip
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

    # -- jobs, as the DAG makes them --

    def rq3_models(self) -> list[tuple[str, str]]:
        from medbridge.artifacts.rq3 import rq3_models

        return [(name, spec["task"]) for name, spec in rq3_models(self.cfg).items()]

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

    def by_model(self) -> dict[str, list[tuple[str, int, int, int]]]:
        """model -> (part, items, image tokens/item, samples/item) of each eval set it answers (one job per model)."""
        out: dict[str, list] = {}
        unknown: dict[str, set] = {}
        for part, model, evalset in self.eval_jobs():
            n = self.items(evalset)
            if n is None:
                unknown.setdefault(part, set()).add(evalset)
                continue
            img = self.vqa_image_tokens if part == "Table 3" else self.mcq_image_tokens
            out.setdefault(model, []).append((part, n, img, samples_per_item(evalset, self.cfg)))
        for part, sets in unknown.items():
            self.notes.append(f"{part}: no item cap (vqa.max_items) for {sorted(sets)}: those jobs not counted")
        return out

    # -- GPU time --

    def decode(self, tokens: float, params_b: float, backend: str = "vllm") -> float:
        rate = self.a.decode_tokens_per_s if backend == "vllm" else self.a.hf_decode_tokens_per_s
        return tokens / (rate * self.a.reference_params_b / params_b)

    def forward(self, tokens: float, params_b: float) -> float:
        return 2 * params_b * 1e9 * tokens / (self.a.prefill_tflops * 1e12)

    def train(self, tokens: float, params_b: float) -> float:
        return 6 * params_b * 1e9 * tokens / (self.a.train_tflops * 1e12)

    def load(self, params_b: float, vllm: bool) -> float:
        """Fixed wall seconds of one model in one job: reading its weights, and starting vLLM if it serves it."""
        return self.a.load_s_per_b * params_b + (self.a.vllm_start_s if vllm else 0.0)

    def job(self, rule: str, key: str, seconds, budget: int, fixed_s: float, parts=()) -> Job:
        """A job whose work is `seconds(completion_tokens)` GPU-seconds, typical and at the full budget."""
        return Job(key, self.gpus.get(rule, 1), seconds(budget * self.a.completion_fraction), seconds(budget),
                   fixed_s, tuple(parts))  # fmt: skip

    # -- the GPU rules: their jobs --

    def generate(self) -> list[Job]:
        ev, a = self.cfg["evaluate"], self.a
        budget, backend = ev.get("max_new_tokens", 2048), ev.get("backend", "hf")
        jobs = []
        for model, sets in self.by_model().items():
            params = self.params_b(model)

            def seconds(completion, sets=sets, params=params):  # prompt + image once per item (shared by samples)
                return sum(self.forward(items * (img + a.prompt_tokens), params)
                           + self.decode(items * (1 + n) * completion, params, backend)
                           for _, items, img, n in sets)  # fmt: skip

            fixed = self.load(params, backend == "vllm")
            jobs.append(self.job("generate", model, seconds, budget, fixed, dict.fromkeys(p for p, *_ in sets)))
        return jobs

    def score(self) -> list[Job]:
        ev, a = self.cfg["evaluate"], self.a
        if ev.get("judge", "rule") != "vlm":
            return []  # the rule judge: answer extraction on CPU
        budget, backend, judge = ev.get("max_new_tokens", 2048), ev.get("backend", "hf"), self.params_b("judge")
        jobs = []
        for model, sets in self.by_model().items():

            def seconds(completion, sets=sets):  # the judge reads image, question and one response; writes a verdict
                judged = [(a.judge_fraction * (1 + n) * items, img) for _, items, img, n in sets]
                return sum(self.forward(k * (img + a.prompt_tokens + completion), judge)
                           + self.decode(k * a.judge_output_tokens, judge, backend) for k, img in judged)  # fmt: skip

            fixed = self.load(judge, backend == "vllm")
            jobs.append(self.job("score", model, seconds, budget, fixed, dict.fromkeys(p for p, *_ in sets)))
        return jobs

    def features(self) -> list[Job]:
        cfg, probe, models = self.cfg, self.cfg.get("probe") or {}, self.cfg["evaluate"]["models"]
        if not probe:
            return []
        from medbridge.probe.features import augment_settings

        # probe.augment authors: the train images pass the tower once per epoch (fresh crops), at the crop size
        aug = augment_settings(cfg)
        epochs, side = (aug["epochs"], aug["crop_size"]) if aug["augment"] == "authors" else (1, cfg["data"]["size"])
        patches = image_tokens(side, probe.get("min_pixels"), probe.get("max_pixels")) * MERGE * MERGE
        train = sum(n_items(cfg, d, "train", probe.get("train_per_class")) for d in cfg["data"]["datasets"])
        other = sum(n_items(cfg, d, "val", None) + eval_items(cfg, d, cfg["mcq"]["eval_split"])[0]
                    for d in cfg["data"]["datasets"])  # fmt: skip
        work = self.forward((train * epochs + other) * patches, self.a.vision_params_b)
        return [self.job("features", m, lambda _: work, 0, self.load(self.params_b(m), False), ["RQ1"])
                for m in models]  # fmt: skip

    def sft_model(self) -> list[Job]:
        roles = [r for r, s in self.cfg["models"].items() if s["source"] == "sft"]
        sft = (self.cfg.get("train") or {}).get("sft") or {}
        examples = sum(self.train_prompts(d) or 0 for d in sft.get("datasets", self.cfg["data"]["datasets"]))
        tokens = examples * sft.get("epochs", 1) * (self.mcq_image_tokens + self.a.prompt_tokens
                                                     + self.a.sft_target_tokens)  # fmt: skip
        return [self.job("sft_model", r, lambda _, r=r: self.train(tokens, self.params_b(r)), 0,
                         self.load(self.params_b(r), False), ["bridge"]) for r in roles]  # fmt: skip

    def grpo_runs(self) -> list[tuple[str, str]]:
        runs = [(r, s.get("task")) for r, s in self.cfg["models"].items() if s["source"] == "grpo"] + self.rq3_models()
        return list(dict.fromkeys(runs))  # a role that is also a grid model (the tiny `rl`) trains once

    def grpo_model(self) -> list[Job]:
        cfg, a = self.cfg, self.a
        grpo = (cfg.get("train") or {}).get("grpo") or {}
        g, budget = grpo.get("num_generations", 8), grpo.get("max_completion_length", 2048)
        per_gpu = grpo.get("batch_size", 8)  # rollouts each GPU decodes at once
        # forward-only passes over every rollout besides the policy's own: CARE's EMA reference, a KL reference
        # CARE runs as train.grpo decides it: a care section without `enabled` is on (CareSettings), none is off
        care_on = (grpo["care"] or {}).get("enabled", True) if "care" in grpo else False
        extra = int(care_on) + int(grpo.get("beta", 0) > 0)
        jobs, rq3 = [], set(self.rq3_models())
        for name, task in self.grpo_runs():
            n = self.train_prompts(task)
            if n is None:
                self.notes.append(f"grpo_model {name}: training set size of task {task!r} unknown: not counted")
                continue
            n *= grpo.get("epochs", 1)
            if grpo.get("max_steps", -1) > 0:  # TRL counts completions per step: batch x accumulation / group size
                n = min(n, grpo["max_steps"] * per_gpu * grpo.get("grad_accum", 1) / g)
            img = self.mcq_image_tokens if task in cfg["data"]["datasets"] else self.vqa_image_tokens
            params = self.params_b(name)

            def seconds(completion, n=n, img=img, params=params):
                # rollouts: n * g / per_gpu rounds of one batch per GPU, each as long as its longest completion
                longest = min(budget, completion / a.completion_fraction * a.longest_fraction)
                latency = a.decode_latency_ms / 1000 * params / a.reference_params_b
                rollouts = n * g / per_gpu * longest * latency + self.forward(n * (img + a.prompt_tokens), params)
                tokens = n * g * (img + a.prompt_tokens + completion)  # then forward + backward over every rollout
                return rollouts + self.train(tokens, params) + extra * self.forward(tokens, params)

            fixed = self.load(params, bool(grpo.get("use_vllm"))) + extra * self.load(params, False)
            jobs.append(self.job("grpo_model", name, seconds, budget, fixed, ["RQ3" if (name, task) in rq3
                                                                              else "Sec. 4"]))  # fmt: skip
        return jobs

    def pmc_label(self) -> list[Job]:
        pmc = (self.cfg.get("vqa") or {}).get("pmc") or {}
        if pmc.get("labeller") != "vlm":
            return []
        questions = pmc.get("pool_size") or self.a.pmc_questions  # pool_size: only a seeded pool is labelled
        self.notes.append(f"pmc_label: {questions} PMC-VQA training questions "
                          + ("(vqa.pmc.pool_size, a seeded pool)" if pmc.get("pool_size") else
                             "assumed (--pmc-questions; vqa.pmc.pool_size labels a seeded pool instead)")
                          + f", in resumable shards of {pmc.get('shard_size', 4096)}")  # fmt: skip
        judge, a, backend = self.params_b(pmc.get("judge", "judge")), self.a, self.cfg["evaluate"].get("backend", "hf")
        tokens = pmc.get("max_new_tokens", a.judge_output_tokens)
        img = self.vqa_image_tokens
        if {"min_pixels", "max_pixels"} & set(pmc):  # the labeller's own bounds; images assumed at the upper one
            side = int(pmc["max_pixels"] ** 0.5) if pmc.get("max_pixels") else self.cfg["data"]["size"]
            img = image_tokens(side, pmc.get("min_pixels"), pmc.get("max_pixels"))
        work = (self.forward(questions * (img + a.prompt_tokens), judge)
                + self.decode(questions * tokens, judge, backend))  # fmt: skip
        return [self.job("pmc_label", "pmc_label", lambda _: work, 0, self.load(judge, backend == "vllm"), ["Sec. 4"])]


@dataclass(frozen=True)
class Generation:
    """One model's whole generation: items per eval set, GPU-seconds at budget, fixed seconds (load, engine start)."""

    items: tuple[int, ...]
    work_budget_s: float
    fixed_s: float


def generation_estimates(cfg: dict, a: Assumptions, count_files: bool = True) -> dict[str, Generation]:
    """model -> its generation's size and cost, as `plan` prices it; `count_files` False: eval subsets sized from the
    config and the paper alone (what medbridge.generate.parts splits jobs by, so the DAG never depends on data)."""
    planner = _Planner(cfg, a, {}, {}, count_files)
    sets, jobs = planner.by_model(), {j.key: j for j in planner.generate()}
    return {m: Generation(tuple(n for _, n, *_ in sets[m]), jobs[m].work_budget_s, jobs[m].fixed_s) for m in jobs}


def _memory_and_disk(planner: _Planner, card_gib: float):
    """medbridge.plan_memory over the roles each GPU rule loads."""
    cfg, pmc = planner.cfg, (planner.cfg.get("vqa") or {}).get("pmc") or {}
    grpo = [name for name, _ in planner.grpo_runs()]
    sft = [r for r, s in cfg["models"].items() if s["source"] == "sft"]
    roles = {"generate": list(planner.by_model()), "sft_model": sft, "grpo_model": grpo,
             "score": ["judge"] if cfg["evaluate"].get("judge") == "vlm" and "judge" in cfg["models"] else [],
             "pmc_label": [pmc.get("judge", "judge")] if pmc.get("labeller") == "vlm" else []}  # fmt: skip
    rows, problems, notes = plan_memory.memory_plan(cfg, planner.a, planner.gpus, card_gib, roles)
    planner.notes.extend(notes)
    return rows, problems, plan_memory.disk_plan(cfg, planner.a, {"sft_model": sft, "grpo_model": grpo})


# GPU rules in the order they are reported; a rule the config does not use yields no row
GPU_RULES = ("generate", "score", "features", "sft_model", "grpo_model", "pmc_label")


def profile_requests(profile: str | Path | None) -> dict[str, dict]:
    """rule -> {gpus, runtime (minutes)} of attempt 1, as a Snakemake profile (a YTE template) asks for them; GPU
    rules it does not name get 1 GPU and the default runtime."""
    if profile is None:
        return {}
    import yte

    path = Path(profile)
    path = path / "config.yaml" if path.is_dir() else path
    if not path.is_file():
        raise MedbridgeError(f"profile {path} not found; pass a Snakemake profile folder such as profiles/slurm")
    with open(path) as f:
        prof = yte.process_yaml(f, require_use_yte=True) or {}

    def value(raw):
        return eval(str(raw), {"attempt": 1, "min": min, "max": max}) if raw is not None else None  # noqa: S307

    default = prof.get("default-resources") or {}
    out = {}
    for rule in GPU_RULES:
        res = {**default, **(prof.get("set-resources") or {}).get(rule, {})}
        out[rule] = {"gpus": int(value(res.get("gpu")) or 1), "runtime": value(res.get("runtime"))}
    return out


DEFAULT_CARD_GIB = 79.0  # an 80 GB A100/H100 as CUDA reports it (79.2 GiB)


def card_memory_gib(profile: str | Path | None) -> float:
    """`__variables__.gpu_memory_gib` of a profile: the memory of one of its GPUs (default an 80 GB card)."""
    import yaml

    if profile is None:
        return DEFAULT_CARD_GIB
    profile_file = Path(profile) / "config.yaml" if Path(profile).is_dir() else Path(profile)
    with open(profile_file) as f:  # the raw template: YTE consumes __variables__
        raw = yaml.safe_load(f) or {}
    value = (raw.get("__variables__") or {}).get("gpu_memory_gib", DEFAULT_CARD_GIB)
    if not isinstance(value, (int, float)) or value <= 0:
        raise MedbridgeError(f"{profile_file}: __variables__.gpu_memory_gib must be a positive number of GiB")
    return float(value)


def read_benchmarks(root: str | Path) -> dict[str, dict[str, float]]:
    """rule -> {wildcards: wall seconds} from Snakemake benchmark files <root>/<rule>/<wildcards>.tsv (mean over
    repeats); the `s` column."""
    import csv

    root = Path(root)
    if not root.is_dir():
        raise MedbridgeError(f"--benchmarks {root} is not a folder; pass results/<run>/benchmarks of a run")
    out: dict[str, dict[str, float]] = {}
    for rule_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for tsv in sorted(rule_dir.rglob("*.tsv")):
            with open(tsv, newline="") as f:
                rows = [float(r["s"]) for r in csv.DictReader(f, delimiter="\t") if r.get("s") not in (None, "", "NA")]
            if rows:
                out.setdefault(rule_dir.name, {})[str(tsv.relative_to(rule_dir).with_suffix(""))] = sum(rows) / len(rows)
    return out


def _calibrate(rule: str, jobs: list[Job], measured: dict[str, float], notes: list[str]) -> float | None:
    """The rule's typical estimate scaled by measured / estimated GPU-seconds of its jobs that left a benchmark."""
    by_key = {j.key: j for j in jobs}
    if rule == "pmc_label" and len(measured) == 1:  # one job, whatever its file is called
        measured = {"pmc_label": next(iter(measured.values()))}
    matched = {k: s for k, s in measured.items() if k in by_key}
    if set(measured) - set(matched):
        notes.append(f"{rule}: benchmark files of no planned job ignored: {sorted(set(measured) - set(matched))}")
    if not matched:
        return None
    est = sum(by_key[k].typical_gpu_s for k in matched)
    real = sum(s * by_key[k].gpus for k, s in matched.items())
    factor = real / est if est else float("nan")
    notes.append(f"{rule}: {len(matched)} of {len(jobs)} jobs measured, {factor:.2g}x their estimate")
    return factor * sum(j.typical_gpu_s for j in jobs) / 3600


def plan(
    cfg: dict,
    assumptions: Assumptions | None = None,
    model_sizes: dict[str, float] | None = None,
    profile: str | Path | None = None,
    benchmarks: str | Path | None = None,
) -> dict:
    """Per GPU rule: jobs, GPUs per job, GPU-hours (typical, at budget, of which fixed costs), booked GPU-hours of
    the profile, and calibrated GPU-hours where benchmark files exist; totals; the assumptions and notes."""
    requests = profile_requests(profile)
    card_gib = card_memory_gib(profile)
    planner = _Planner(cfg, assumptions or Assumptions(), dict(model_sizes or {}),
                       {r: q["gpus"] for r, q in requests.items()})  # fmt: skip
    measured = read_benchmarks(benchmarks) if benchmarks else {}
    rows = []
    for rule in GPU_RULES:
        jobs = getattr(planner, rule)()
        if not jobs:
            continue
        runtime = requests.get(rule, {}).get("runtime")
        parts = list(dict.fromkeys(p for j in jobs for p in j.parts))
        rows.append({
            "rule": rule,
            "parts": ", ".join(parts),
            "jobs": len(jobs),
            "gpus_per_job": max(j.gpus for j in jobs),
            "gpu_hours": sum(j.typical_gpu_s for j in jobs) / 3600,
            "gpu_hours_at_budget": sum(j.budget_gpu_s for j in jobs) / 3600,
            "fixed_gpu_hours": sum(j.fixed_s * j.gpus for j in jobs) / 3600,
            "booked_gpu_hours": None if runtime is None else sum(runtime / 60 * j.gpus for j in jobs),
            "calibrated_gpu_hours": _calibrate(rule, jobs, measured.get(rule, {}), planner.notes),
            "jobs_detail": {j.key: {"gpus": j.gpus, "gpu_hours": j.typical_gpu_s / 3600,
                                    "fixed_s": j.fixed_s} for j in jobs},  # fmt: skip
        })  # fmt: skip
    booked = [r["booked_gpu_hours"] for r in rows]
    memory, problems, disk = _memory_and_disk(planner, card_gib)
    if profile is None:  # GPUs per job unknown: memory shown for 1 GPU each, not enforced
        planner.notes.append("no profile: per-GPU memory assumes 1 GPU per job and is not checked")
    else:
        plan_memory.refuse(problems)
    return {
        "run_name": cfg["run_name"],
        "profile": str(profile) if profile else None,
        "rows": rows,
        "total_jobs": sum(r["jobs"] for r in rows),
        "total_gpu_hours": sum(r["gpu_hours"] for r in rows),
        "total_gpu_hours_at_budget": sum(r["gpu_hours_at_budget"] for r in rows),
        "total_booked_gpu_hours": None if None in booked else sum(booked),
        "gpu_memory_gib": card_gib,
        "memory": memory,
        "disk": disk,
        "assumptions": asdict(planner.a),
        "notes": list(dict.fromkeys(planner.notes)),
    }


def format_plan(result: dict) -> str:
    from tabulate import tabulate

    def hours(x: float | None) -> str:
        return "" if x is None else f"{x:,.1f}" if x >= 0.1 else f"{x:.2g}"

    table = [[r["rule"], r["jobs"], r["gpus_per_job"], hours(r["gpu_hours"]), hours(r["gpu_hours_at_budget"]),
              hours(r["fixed_gpu_hours"]), hours(r["booked_gpu_hours"]), hours(r["calibrated_gpu_hours"]), r["parts"]]
             for r in result["rows"]]  # fmt: skip
    table.append(["total", result["total_jobs"], "", hours(result["total_gpu_hours"]),
                  hours(result["total_gpu_hours_at_budget"]), hours(sum(r["fixed_gpu_hours"] for r in result["rows"])),
                  hours(result["total_booked_gpu_hours"]), "", ""])  # fmt: skip
    helps = {f.name: f.metadata["help"] for f in fields(Assumptions)}
    booked = f"booked = runtime x GPUs x jobs of {result['profile']}" if result["profile"] else "no profile: no booking"
    lines = [f"GPU plan of run {result['run_name']!r}: estimates, not measurements; CPU rules are not counted; "
             f"{booked}", "",
             tabulate(table, headers=["rule", "jobs", "GPUs/job", "GPU-h typical", "GPU-h at budget", "of which fixed",
                                      "GPU-h booked", "calibrated", "parts"]), "",
             "Assumptions (override with the flags of `medbridge plan --help`):"]  # fmt: skip
    lines += [f"  {k} = {v:g}: {helps[k]}" for k, v in result["assumptions"].items()]
    lines += ["", f"GPU memory per GPU of each rule's largest job, on {result['gpu_memory_gib']:g} GiB cards "
              "(profile __variables__.gpu_memory_gib; medbridge.plan_memory):"]  # fmt: skip
    lines += [f"  {m['rule']} {m['job']} ({m['gpus']} GPU): {m['needs_gib']:.1f} of {m['has_gib']:.1f} GiB = "
              + ", ".join(f"{k} {v:.1f}" for k, v in m["parts"].items()) for m in result["memory"]]  # fmt: skip
    for d in result["disk"]:
        lines.append(f"Checkpoint disk, {d['rule']}: {d['checkpoint_gb']:.0f} GB each, {d['kept']} kept per run, "
                     f"{d['runs']} runs: {d['all_runs_gb']:,.0f} GB if all run at once"
                     + ("" if d["save_only_model"] else "; train.<kind>.save_only_model: weights only (a killed run "
                        "then starts over)"))  # fmt: skip
    if result["notes"]:
        lines += ["Notes:"] + [f"  {n}" for n in result["notes"]]
    return "\n".join(lines)
