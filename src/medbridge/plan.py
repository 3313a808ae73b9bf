"""What a run will cost before it runs: per GPU rule, the number of jobs and an estimate of GPU-hours.

Job counts follow the config the way the DAG makes its jobs (evaluated models x eval sets, one `features` job per
model, RQ3 inits x training tasks, ...). Work comes from the config's sizes: MCQ items (per_class x the dataset's
classes from medmnist's label table, capped by the split's size), samples per item (evaluate.n_samples; vqa.n_samples
for Table 3), token budgets (max_new_tokens, max_completion_length), image tokens (Qwen2.5-VL's resize of data.size
under the configured pixel bounds) and model sizes (from the hub id, e.g. "7B"). Turning work into time needs throughputs, which are
assumptions, not measurements: they are the `Assumptions` fields below, each documented and overridable on the
command line (`medbridge plan --help`). The estimate is only as good as they are; measure one job and adjust.

GPU-hours are GPU-seconds of work / 3600: they do not depend on how many GPUs one job spreads over (perfect scaling
is assumed), only its wall time does. Two columns: "typical" (mean completion = completion_fraction x the token
budget) and "at budget" (every completion runs to its token budget: an upper bound for generation).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields

from medbridge import MedbridgeError
from medbridge.data.medmnist import dataset_info, medmnist_info

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
    prefill_tflops: float = _assumption(
        400.0, "effective TFLOP/s of one GPU on compute-bound inference (prompts, images, vision tower)"
    )
    train_tflops: float = _assumption(
        250.0, "effective TFLOP/s of one GPU while training (forward + backward, ZeRO-3 overheads included)"
    )
    completion_fraction: float = _assumption(
        0.25, "mean completion length as a fraction of its token budget (the 'typical' column)"
    )
    judge_fraction: float = _assumption(0.1, "share of responses the VLM judge re-reads (no clean <answer> tag)")
    prompt_tokens: int = _assumption(150, "text tokens of one MCQ prompt (question, options, instructions, template)")
    judge_output_tokens: int = _assumption(16, "tokens the judge writes per verdict")
    sft_target_tokens: int = _assumption(64, "tokens of one SFT target answer")
    vision_params_b: float = _assumption(
        0.675, "parameters (billions) of the vision tower (Qwen2.5-VL's ViT, the same at 3B/7B/32B/72B)"
    )
    reference_params_b: float = _assumption(7.0, "model size (billions) at which decode_tokens_per_s holds")


@dataclass
class Estimate:
    rule: str
    part: str
    jobs: int
    gpu_hours: float
    gpu_hours_at_budget: float
    basis: str


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


def image_tokens(size: int, min_pixels: int | None, max_pixels: int | None) -> int:
    """LLM tokens of one size x size image after Qwen2.5-VL's resize to the pixel bounds (the library's own rule)."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    bounds = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v}
    h, w = smart_resize(size, size, factor=PATCH * MERGE, **bounds)
    return (h // (PATCH * MERGE)) * (w // (PATCH * MERGE))


_SIZE_IN_NAME = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)[Bb](?![A-Za-z])")


class _Planner:
    """The estimate of one config; `notes` collects what was assumed or left out, for the reader."""

    def __init__(self, cfg: dict, a: Assumptions, model_sizes: dict[str, float], pmc_questions: int | None):
        self.cfg, self.a, self.overrides, self.pmc_questions = cfg, a, model_sizes, pmc_questions
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
        """Items of an eval set: a MedMNIST dataset's balanced MCQ subset, or a Table 3 benchmark's item cap (its own
        max_items, else vqa.max_items; an upper bound: a benchmark may have fewer usable rows)."""
        mcq, vqa = self.cfg["mcq"], self.cfg.get("vqa") or {}
        if evalset in self.cfg["data"]["datasets"]:
            return n_items(self.cfg, evalset, mcq["eval_split"], mcq["per_class"])
        entry = next((b for b in vqa.get("benchmarks", []) if b["name"] == evalset), {})
        return entry.get("max_items", vqa.get("max_items"))

    def n_samples(self, part: str) -> int:
        """Samples per item besides the greedy answer: Pass@K needs n on MedMNIST; Table 3 reports greedy accuracy."""
        if part == "Table 3":
            return (self.cfg.get("vqa") or {}).get("n_samples", 0)
        return self.cfg["evaluate"]["n_samples"]

    def train_prompts(self, task: str) -> int | None:
        """Training items of an RL/SFT task: a MedMNIST train split's items, or the balanced PMC-VQA subset."""
        mcq = self.cfg["mcq"]
        if task in self.cfg["data"]["datasets"]:
            return n_items(self.cfg, task, "train", mcq.get("train_per_class", mcq["per_class"]))
        return ((self.cfg.get("vqa") or {}).get("pmc") or {}).get("subset_size")

    # -- jobs, as the DAG makes them --

    def rq3_models(self) -> list[tuple[str, str]]:
        rq3 = self.cfg.get("rq3") or {}
        return [(f"rq3-{init}-{task}", task) for init in rq3.get("inits", []) for task in rq3.get("train_tasks", [])]

    def eval_jobs(self) -> list[tuple[str, str, str]]:
        """(part, model, eval set) of every generation: RQ2 (evaluated models x datasets), RQ3 (trained models x the
        targets of their task's transfer pairs), Table 3 (its models x benchmarks)."""
        cfg, datasets = self.cfg, self.cfg["data"]["datasets"]
        jobs = [("RQ2", m, d) for m in cfg["evaluate"]["models"] for d in datasets]
        pairs = [p for group in (cfg.get("rq3") or {}).get("pairs", {}).values() for p in group]
        for name, task in self.rq3_models():
            jobs += [("RQ3", name, t) for t in dict.fromkeys(t for s, t in pairs if s == task and t in datasets)]
        vqa = cfg.get("vqa") or {}
        jobs += [("Table 3", m, b["name"]) for m in vqa.get("models", []) for b in vqa.get("benchmarks", [])]
        return jobs

    def sized_eval_jobs(self, part: str) -> list[tuple[str, int, int]]:
        """(model, items, image tokens/item) of one part's generations whose item count the config fixes."""
        out, unknown = [], set()
        for p, model, evalset in self.eval_jobs():
            if p != part:
                continue
            n = self.items(evalset)
            if n is None:
                unknown.add(evalset)
                continue
            out.append((model, n, self.mcq_image_tokens if p != "Table 3" else self.vqa_image_tokens))
        if unknown:
            self.notes.append(f"{part}: no item cap (vqa.max_items) for {sorted(unknown)}: those jobs not counted")
        return out

    # -- GPU time --

    def decode(self, tokens: float, params_b: float) -> float:
        return tokens / (self.a.decode_tokens_per_s * self.a.reference_params_b / params_b)

    def forward(self, tokens: float, params_b: float) -> float:
        return 2 * params_b * 1e9 * tokens / (self.a.prefill_tflops * 1e12)

    def train(self, tokens: float, params_b: float) -> float:
        return 6 * params_b * 1e9 * tokens / (self.a.train_tflops * 1e12)

    def two_ways(self, budget: int, seconds) -> tuple[float, float]:
        """GPU-hours of `seconds(completion_tokens)` at the typical completion length and at the full budget."""
        return seconds(budget * self.a.completion_fraction) / 3600, seconds(budget) / 3600

    # -- the GPU rules --

    def generate(self) -> list[Estimate]:
        ev, a = self.cfg["evaluate"], self.a
        budget = ev.get("max_new_tokens", 2048)
        out = []
        for part in ("RQ2", "RQ3", "Table 3"):
            jobs, n = self.sized_eval_jobs(part), self.n_samples(part)
            if not jobs:
                continue

            def seconds(completion, jobs=jobs):  # prompt + image once per item (vLLM shares it over the samples)
                return sum(self.forward(items * (img + a.prompt_tokens), self.params_b(model))
                           + self.decode(items * (1 + n) * completion, self.params_b(model))
                           for model, items, img in jobs)  # fmt: skip

            basis = f"{sum(j[1] for j in jobs)} items x (greedy + {n} samples), up to {budget} tokens each"
            out.append(Estimate("generate", part, len(jobs), *self.two_ways(budget, seconds), basis))
        return out

    def score(self) -> list[Estimate]:
        ev, a = self.cfg["evaluate"], self.a
        parts = ("RQ2", "RQ3", "Table 3")
        if ev.get("judge", "rule") != "vlm":
            jobs = sum(len(self.sized_eval_jobs(p)) for p in parts)
            return [Estimate("score", "rule judge (CPU)", jobs, 0.0, 0.0, "answer extraction only")]
        budget, judge = ev.get("max_new_tokens", 2048), self.params_b("judge")
        jobs = [(*j, self.n_samples(p)) for p in parts for j in self.sized_eval_jobs(p)]

        def seconds(completion):  # the judge reads image, question and one response, and writes a short verdict
            judged = [(a.judge_fraction * (1 + n) * items, img) for _, items, img, n in jobs]
            return sum(self.forward(k * (img + a.prompt_tokens + completion), judge)
                       + self.decode(k * a.judge_output_tokens, judge) for k, img in judged)  # fmt: skip

        basis = f"{a.judge_fraction:.0%} of the responses re-read by the {judge:g}B judge"
        return [Estimate("score", "VLM judge", len(jobs), *self.two_ways(budget, seconds), basis)]

    def features(self) -> list[Estimate]:
        cfg, probe, models = self.cfg, self.cfg.get("probe") or {}, self.cfg["evaluate"]["models"]
        if not probe:
            return []
        from medbridge.probe.features import augment_settings

        # probe.augment authors: the train images pass the tower once per epoch (fresh crops), at the crop size
        aug = augment_settings(cfg)
        epochs, side = (aug["epochs"], aug["crop_size"]) if aug["augment"] == "authors" else (1, cfg["data"]["size"])
        patches = image_tokens(side, probe.get("min_pixels"), probe.get("max_pixels")) * MERGE * MERGE
        train = sum(n_items(cfg, d, "train", probe.get("train_per_class")) for d in cfg["data"]["datasets"])
        other = sum(n_items(cfg, d, "val", None) + n_items(cfg, d, "test", cfg["mcq"]["per_class"])
                    for d in cfg["data"]["datasets"])  # fmt: skip
        images = train * epochs + other
        hours = len(models) * self.forward(images * patches, self.a.vision_params_b) / 3600
        basis = (f"{images} images/model through the vision tower ({train} train x {epochs} augmented epochs + "
                 f"{other} val/test), {patches} patches each")  # fmt: skip
        return [Estimate("features", "RQ1", len(models), hours, hours, basis)]

    def sft_model(self) -> list[Estimate]:
        roles = [r for r, s in self.cfg["models"].items() if s["source"] == "sft"]
        if not roles:
            return []
        sft = (self.cfg.get("train") or {}).get("sft") or {}
        examples = sum(self.train_prompts(d) or 0 for d in sft.get("datasets", self.cfg["data"]["datasets"]))
        epochs = sft.get("epochs", 1)
        tokens = examples * epochs * (self.mcq_image_tokens + self.a.prompt_tokens + self.a.sft_target_tokens)
        hours = sum(self.train(tokens, self.params_b(r)) for r in roles) / 3600
        basis = f"{examples} examples x {epochs:g} epochs, forward + backward"
        return [Estimate("sft_model", "bridge", len(roles), hours, hours, basis)]

    def grpo_model(self) -> list[Estimate]:
        cfg, a = self.cfg, self.a
        grpo = (cfg.get("train") or {}).get("grpo") or {}
        runs = [(r, s.get("task")) for r, s in cfg["models"].items() if s["source"] == "grpo"] + self.rq3_models()
        if not runs:
            return []
        g, budget = grpo.get("num_generations", 8), grpo.get("max_completion_length", 2048)
        # forward-only passes over every rollout besides the policy's own: CARE's EMA reference, a KL reference
        extra = int((grpo.get("care") or {}).get("enabled", False)) + int(grpo.get("beta", 0) > 0)
        known = []
        for name, task in runs:
            n = self.train_prompts(task)
            if n is None:
                self.notes.append(f"grpo_model {name}: training set size of task {task!r} unknown: not counted")
                continue
            n *= grpo.get("epochs", 1)
            if grpo.get("max_steps", -1) > 0:  # TRL counts completions per step: batch x accumulation / group size
                n = min(n, grpo["max_steps"] * grpo.get("batch_size", 8) * grpo.get("grad_accum", 1) / g)
            img = self.mcq_image_tokens if task in cfg["data"]["datasets"] else self.vqa_image_tokens
            known.append((name, n, img))

        def seconds(completion):  # rollouts (prefill + decode), then forward + backward over every rollout
            total = 0.0
            for name, prompts, img in known:
                params, tokens = self.params_b(name), prompts * g * (img + a.prompt_tokens + completion)
                total += (self.forward(prompts * (img + a.prompt_tokens), params)
                          + self.decode(prompts * g * completion, params)
                          + self.train(tokens, params) + extra * self.forward(tokens, params))  # fmt: skip
            return total

        basis = f"{sum(k[1] for k in known):.0f} prompts x {g} rollouts (up to {budget} tokens) + policy updates"
        return [Estimate("grpo_model", "RQ3 + grpo roles", len(known), *self.two_ways(budget, seconds), basis)]

    def pmc_label(self) -> list[Estimate]:
        pmc = (self.cfg.get("vqa") or {}).get("pmc") or {}
        if pmc.get("labeller") != "vlm":
            return []
        questions = self.pmc_questions or pmc.get("pool_size")  # pool_size: only a seeded pool is labelled
        if questions is None:
            self.notes.append("pmc_label: the number of PMC-VQA training questions comes from the dataset, not the "
                              "config: pass --pmc-questions N to count it")  # fmt: skip
            return []
        judge, a = self.params_b(pmc.get("judge", "judge")), self.a
        seconds = (self.forward(questions * (self.vqa_image_tokens + a.prompt_tokens), judge)
                   + self.decode(questions * pmc.get("max_new_tokens", a.judge_output_tokens), judge))  # fmt: skip
        basis = f"{questions} questions labelled by the {judge:g}B judge"
        return [Estimate("pmc_label", "Sec. 4", 1, seconds / 3600, seconds / 3600, basis)]


# GPU rules in the order they are reported; a rule the config does not use yields no row
GPU_RULES = ("generate", "score", "features", "sft_model", "grpo_model", "pmc_label")


def plan(
    cfg: dict,
    assumptions: Assumptions | None = None,
    model_sizes: dict[str, float] | None = None,
    pmc_questions: int | None = None,
) -> dict:
    """Per GPU rule: jobs and GPU-hours (typical, at budget); totals; the assumptions and notes."""
    planner = _Planner(cfg, assumptions or Assumptions(), dict(model_sizes or {}), pmc_questions)
    rows = [e for rule in GPU_RULES for e in getattr(planner, rule)()]
    return {
        "run_name": cfg["run_name"],
        "rows": [asdict(r) for r in rows],
        "total_jobs": sum(r.jobs for r in rows),
        "total_gpu_hours": sum(r.gpu_hours for r in rows),
        "total_gpu_hours_at_budget": sum(r.gpu_hours_at_budget for r in rows),
        "assumptions": asdict(planner.a),
        "notes": list(dict.fromkeys(planner.notes)),
    }


def format_plan(result: dict) -> str:
    from tabulate import tabulate

    def hours(x: float) -> str:
        return f"{x:,.1f}" if x >= 0.1 else f"{x:.2g}"

    table = [[r["rule"], r["part"], r["jobs"], hours(r["gpu_hours"]), hours(r["gpu_hours_at_budget"]), r["basis"]]
             for r in result["rows"]]  # fmt: skip
    table.append(["total", "", result["total_jobs"], hours(result["total_gpu_hours"]),
                  hours(result["total_gpu_hours_at_budget"]), ""])  # fmt: skip
    helps = {f.name: f.metadata["help"] for f in fields(Assumptions)}
    lines = [f"GPU plan of run {result['run_name']!r}: estimates, not measurements; CPU rules are not counted", "",
             tabulate(table, headers=["rule", "part", "jobs", "GPU-h typical", "GPU-h at budget", "basis"]), "",
             "Assumptions (override with the flags of `medbridge plan --help`):"]  # fmt: skip
    lines += [f"  {k} = {v:g}: {helps[k]}" for k, v in result["assumptions"].items()]
    if result["notes"]:
        lines += ["Notes:"] + [f"  {n}" for n in result["notes"]]
    return "\n".join(lines)
