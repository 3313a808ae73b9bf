"""GPU-seconds of each GPU rule's jobs: one cost function per rule, from the config's sizes (medbridge.plan.sizes)
and the throughput assumptions (medbridge.plan.assumptions). The formulas are explained in medbridge.plan's
docstring."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from medbridge.plan.assumptions import Assumptions, Job
from medbridge.plan.sizes import MERGE, EvalSet, Sizes, eval_items, image_tokens, n_items

# ---- unit costs: GPU-seconds of tokens through a model of params_b billion parameters ------------------------------


def decode(a: Assumptions, tokens: float, params_b: float, backend: str = "vllm") -> float:
    """Generated tokens: memory-bound, so the rate scales as 1 / model size."""
    rate = a.decode_tokens_per_s if backend == "vllm" else a.hf_decode_tokens_per_s
    return tokens / (rate * a.reference_params_b / params_b)


def forward(a: Assumptions, tokens: float, params_b: float) -> float:
    """Prefill (prompts, images, reference models): compute-bound, 2 FLOPs per parameter and token."""
    return 2 * params_b * 1e9 * tokens / (a.prefill_tflops * 1e12)


def train(a: Assumptions, tokens: float, params_b: float) -> float:
    """Forward + backward: 6 FLOPs per parameter and token."""
    return 6 * params_b * 1e9 * tokens / (a.train_tflops * 1e12)


def load(a: Assumptions, params_b: float, vllm: bool) -> float:
    """Fixed wall seconds of one model in one job: reading its weights, and starting vLLM if it serves it."""
    return a.load_s_per_b * params_b + (a.vllm_start_s if vllm else 0.0)


class Work(NamedTuple):
    """What one job costs: GPU-seconds typical and with every completion at its budget, and the fixed wall seconds
    (loads, engine starts) every GPU of the job pays."""

    typical_s: float
    budget_s: float
    fixed_s: float


def priced(a: Assumptions, seconds: Callable[[float], float], budget: int, fixed_s: float) -> Work:
    """`seconds(completion tokens)`, typical (completion_fraction of the budget) and at the full budget."""
    return Work(seconds(budget * a.completion_fraction), seconds(budget), fixed_s)


def job(rule: str, key: str, work: Work, gpus: dict[str, int], parts=()) -> Job:
    return Job(key, gpus.get(rule, 1), work.typical_s, work.budget_s, work.fixed_s, tuple(parts))


def _parts(sets: list[EvalSet]) -> dict[str, None]:
    return dict.fromkeys(s.part for s in sets)


# ---- the GPU rules -------------------------------------------------------------------------------------------------


def generation_work(sizes: Sizes, a: Assumptions, model: str, sets: list[EvalSet]) -> Work:
    """One model's generations over its eval sets (`sizes.eval_sets()[model]`): prompt and image prefilled once per
    item (the samples share them), then the greedy answer and every sample decoded; the model loads once (and
    starts vLLM)."""
    ev = sizes.cfg["evaluate"]
    budget, backend, params_b = ev["max_new_tokens"], ev["backend"], sizes.params_b(model)

    def seconds(completion):
        return sum(
            forward(a, s.items * (s.image_tokens + a.prompt_tokens), params_b)
            + decode(a, s.items * (1 + s.samples) * completion, params_b, backend)
            for s in sets
        )

    return priced(a, seconds, budget, load(a, params_b, backend == "vllm"))


def generate(sizes: Sizes, a: Assumptions, gpus: dict[str, int]) -> list[Job]:
    """One job per model over all its eval sets (none with evaluate.job_hours: see generate_part)."""
    if sizes.cfg["evaluate"].get("job_hours"):
        return []
    jobs = []
    for model, sets in sizes.eval_sets().items():
        work = generation_work(sizes, a, model, sets)
        jobs.append(job("generate", model, work, gpus, _parts(sets)))
    return jobs


def generate_part(sizes: Sizes, a: Assumptions, gpus: dict[str, int]) -> list[Job]:
    """With evaluate.job_hours: each model's generation over its N part jobs (medbridge.generate.parts), keyed
    `<model>/<i>-of-<N>` as their benchmark files are; each does 1/N of the work and pays the model load itself."""
    from medbridge.generate.parts import generation_parts

    parts, jobs = generation_parts(sizes.cfg), []
    for model, sets in sizes.eval_sets().items():
        if model not in parts:
            continue
        n, work = parts[model], generation_work(sizes, a, model, sets)
        share = Work(work.typical_s / n, work.budget_s / n, work.fixed_s)
        jobs += [job("generate_part", f"{model}/{i}-of-{n}", share, gpus, _parts(sets)) for i in range(1, n + 1)]
    return jobs


def score(sizes: Sizes, a: Assumptions, gpus: dict[str, int]) -> list[Job]:
    """The VLM judge, one job per generating model: it re-reads judge_fraction of the responses (image, prompt and
    the response prefilled) and writes a verdict for each. The rule judge runs on CPU: no jobs."""
    ev = sizes.cfg["evaluate"]
    if ev["judge"] != "vlm":
        return []
    budget, backend, judge = ev["max_new_tokens"], ev["backend"], sizes.params_b("judge")
    jobs = []
    for model, sets in sizes.eval_sets().items():

        def seconds(completion, sets=sets):
            judged = [(a.judge_fraction * (1 + s.samples) * s.items, s.image_tokens) for s in sets]
            return sum(
                forward(a, k * (img + a.prompt_tokens + completion), judge)
                + decode(a, k * a.judge_output_tokens, judge, backend)
                for k, img in judged
            )

        work = priced(a, seconds, budget, load(a, judge, backend == "vllm"))
        jobs.append(job("score", model, work, gpus, _parts(sets)))
    return jobs


def features(sizes: Sizes, a: Assumptions, gpus: dict[str, int]) -> list[Job]:
    """The probe's vision-tower features, one job per evaluated model: every probe image's patches through the
    tower (vision_params_b), the train images once per epoch under the authors' augmentation."""
    cfg = sizes.cfg
    probe, models = cfg["probe"], cfg["evaluate"]["models"]
    from medbridge.probe.features import augment_settings

    # probe.augment authors: the train images pass the tower once per epoch (fresh crops), at the crop size
    aug = augment_settings(cfg)
    epochs, side = (aug["epochs"], aug["crop_size"]) if aug["augment"] == "authors" else (1, cfg["data"]["size"])
    patches = image_tokens(side, probe.get("min_pixels"), probe.get("max_pixels")) * MERGE * MERGE
    train_images = sum(n_items(cfg, d, "train", probe.get("train_per_class")) for d in cfg["data"]["datasets"])
    other = sum(
        n_items(cfg, d, "val", None) + eval_items(cfg, d, cfg["mcq"]["eval_split"])[0] for d in cfg["data"]["datasets"]
    )
    work = forward(a, (train_images * epochs + other) * patches, a.vision_params_b)
    return [job("features", m, Work(work, work, load(a, sizes.params_b(m), False)), gpus, ["RQ1"]) for m in models]


def sft_model(sizes: Sizes, a: Assumptions, gpus: dict[str, int]) -> list[Job]:
    """One job per sft role: training over examples x epochs of image, prompt and target tokens."""
    cfg = sizes.cfg
    sft = cfg["train"]["sft"]
    examples = sum(sizes.train_prompts(d) or 0 for d in sft["datasets"])
    tokens = examples * sft["epochs"] * (sizes.mcq_image_tokens + a.prompt_tokens + a.sft_target_tokens)
    jobs = []
    for role in sizes.sft_roles():
        params = sizes.params_b(role)
        work = train(a, tokens, params)
        jobs.append(job("sft_model", role, Work(work, work, load(a, params, False)), gpus, ["bridge"]))
    return jobs


def grpo_model(sizes: Sizes, a: Assumptions, gpus: dict[str, int]) -> list[Job]:
    """One job per GRPO run (roles and the RQ3 grid): rollouts at small-batch decode latency, each GPU waiting for
    the longest completion of its batch; the prompts' prefill; training over every rollout; a forward per reference
    model (CARE's EMA reference, a KL reference) over every rollout."""
    cfg = sizes.cfg
    grpo = cfg["train"]["grpo"]
    g, budget = grpo["num_generations"], grpo["max_completion_length"]
    per_gpu = grpo["batch_size"]  # rollouts each GPU decodes at once
    # CARE runs as train.grpo decides it: a care section without `enabled` is on (CareSettings), none is off
    care_on = grpo["care"]["enabled"]
    references = int(care_on) + int(grpo["beta"] > 0)
    jobs, rq3 = [], set(sizes.rq3_models())
    for name, task in sizes.grpo_runs():
        n = sizes.train_prompts(task)
        if n is None:
            sizes.notes.append(f"grpo_model {name}: training set size of task {task!r} unknown: not counted")
            continue
        n *= grpo["epochs"]
        if grpo["max_steps"] > 0:  # TRL counts completions per step: batch x accumulation / group size
            n = min(n, grpo["max_steps"] * per_gpu * grpo["grad_accum"] / g)
        img = sizes.mcq_image_tokens if task in cfg["data"]["datasets"] else sizes.vqa_image_tokens
        params = sizes.params_b(name)

        def seconds(completion, n=n, img=img, params=params):
            # rollouts: n * g / per_gpu rounds of one batch per GPU, each as long as its longest completion
            longest = min(budget, completion / a.completion_fraction * a.longest_fraction)
            latency = a.decode_latency_ms / 1000 * params / a.reference_params_b
            rollouts = n * g / per_gpu * longest * latency + forward(a, n * (img + a.prompt_tokens), params)
            tokens = n * g * (img + a.prompt_tokens + completion)  # then forward + backward over every rollout
            return rollouts + train(a, tokens, params) + references * forward(a, tokens, params)

        fixed = load(a, params, grpo["use_vllm"]) + references * load(a, params, False)
        part = "RQ3" if (name, task) in rq3 else "Sec. 4"
        jobs.append(job("grpo_model", name, priced(a, seconds, budget, fixed), gpus, [part]))
    return jobs


def pmc_label(sizes: Sizes, a: Assumptions, gpus: dict[str, int]) -> list[Job]:
    """The VLM labeller over PMC-VQA's training questions (or vqa.pmc.pool_size of them): one image and question
    prefilled, max_new_tokens written, per question; one job."""
    cfg = sizes.cfg
    pmc = (cfg.get("vqa") or {}).get("pmc") or {}
    if pmc.get("labeller") != "vlm":
        return []
    questions = pmc.get("pool_size") or a.pmc_questions  # pool_size: only a seeded pool is labelled
    sizes.notes.append(
        f"pmc_label: {questions} PMC-VQA training questions "
        + (
            "(vqa.pmc.pool_size, a seeded pool)"
            if pmc.get("pool_size")
            else "assumed (--pmc-questions; vqa.pmc.pool_size labels a seeded pool instead)"
        )
        + f", in resumable shards of {pmc['shard_size']}"
    )
    judge, backend = sizes.params_b(pmc["judge"]), cfg["evaluate"]["backend"]
    tokens = pmc["max_new_tokens"]
    img = sizes.vqa_image_tokens
    if {"min_pixels", "max_pixels"} & set(pmc):  # the labeller's own bounds; images assumed at the upper one
        side = int(pmc["max_pixels"] ** 0.5) if pmc.get("max_pixels") else cfg["data"]["size"]
        img = image_tokens(side, pmc.get("min_pixels"), pmc.get("max_pixels"))
    work = forward(a, questions * (img + a.prompt_tokens), judge) + decode(a, questions * tokens, judge, backend)
    return [job("pmc_label", "pmc_label", Work(work, work, load(a, judge, backend == "vllm")), gpus, ["Sec. 4"])]


# GPU rules in the order they are reported, each with its cost function; a rule the config does not use has no jobs
COSTS: dict[str, Callable[[Sizes, Assumptions, dict[str, int]], list[Job]]] = {
    "generate": generate,
    "generate_part": generate_part,
    "score": score,
    "features": features,
    "sft_model": sft_model,
    "grpo_model": grpo_model,
    "pmc_label": pmc_label,
}
