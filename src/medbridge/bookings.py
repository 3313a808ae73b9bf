"""The GPU rules and what each books per job: GPUs, cores per GPU, host memory and wall time. This is the one list of
GPU rules: the rules declare their `threads:` and `resources:` from it (rules/common.smk), `medbridge plan` prices
and checks what they book (medbridge.plan, one cost function per rule here), and the tests read the set from it.
A profile keeps only site settings (partitions, accounts) and overrides, e.g. a cluster whose wall-time limit is
shorter; `medbridge plan --profile` applies the same overrides before it compares bookings with the estimates.

Kept free of heavy imports: every Snakemake start reads it."""

from __future__ import annotations

from dataclasses import dataclass

JUDGE_GPUS = 2  # the 32B judge's ~66 GB of bf16 weights over 2 cards of >= 40 GB (one 80 GB card: set it to 1)


@dataclass(frozen=True)
class Booking:
    gpus: int
    mem_mb: int  # host memory
    runtime: int  # minutes
    cpus_per_gpu: int = 8
    one_node: bool = False  # multi-GPU training: accelerate launches one process per GPU of one node


BOOKINGS: dict[str, Booking] = {
    # without evaluate.job_hours: one job generates all of a model's eval sets (with it, `generate` only assembles the
    # parts' shards, on a CPU, and books nothing here)
    "generate": Booking(gpus=1, mem_mb=64000, runtime=2880),
    # vLLM: one of a model's N part jobs; its runtime is evaluate.job_hours, which N is chosen to fit
    "generate_part": Booking(gpus=1, mem_mb=64000, runtime=180),
    # the judge: the plan estimates base's judging at 13.7 h at budget on 2 GPUs
    "score": Booking(gpus=JUDGE_GPUS, mem_mb=128000, runtime=900),
    # the frozen vision tower over every image of one model's datasets
    "features": Booking(gpus=1, mem_mb=96000, runtime=240),
    # full-parameter SFT of a 7B VLM: DeepSpeed ZeRO-3 over 4 GPUs of one node
    "sft_model": Booking(gpus=4, mem_mb=256000, runtime=1440, one_node=True),
    # GRPO-CARE of a 7B VLM, as the authors ran it; a longer run resumes from its checkpoints in the next attempt
    "grpo_model": Booking(gpus=4, mem_mb=256000, runtime=2880, one_node=True),
    # the judge labels the imaging modality of PMC-VQA's training questions
    "pmc_label": Booking(gpus=JUDGE_GPUS, mem_mb=128000, runtime=480),
}
GPU_RULES = tuple(BOOKINGS)
JUDGE_RULES = ("score", "pmc_label")


def split_generation(cfg: dict) -> bool:
    """With evaluate.job_hours, generation runs in `generate_part` jobs and `generate` is a CPU job."""
    return bool(cfg["evaluate"].get("job_hours"))


def booking(rule: str, cfg: dict) -> Booking | None:
    """What one job of `rule` books under `cfg`; None for a rule that runs on a CPU under it (or has no jobs:
    generate_part without evaluate.job_hours). The judge's GPUs follow
    evaluate.judge_tensor_parallel_size where it is set (vLLM shards the judge over exactly that many)."""
    if rule not in BOOKINGS:
        return None
    if rule in ("generate", "generate_part") and (rule == "generate_part") != split_generation(cfg):
        return None  # one of the two holds the GPU: generate_part with evaluate.job_hours, generate without
    b = BOOKINGS[rule]
    if rule == "generate_part":
        return Booking(b.gpus, b.mem_mb, round(60 * cfg["evaluate"]["job_hours"]), b.cpus_per_gpu)
    if rule in JUDGE_RULES and cfg["evaluate"].get("judge_tensor_parallel_size"):
        return Booking(cfg["evaluate"]["judge_tensor_parallel_size"], b.mem_mb, b.runtime, b.cpus_per_gpu)
    return b


def runs_on_gpus(rule: str, cfg: dict) -> bool:
    """Whether the config puts the rule's work on GPUs: training and the vision tower where their `device` is cuda,
    generation and the judge where they run on vLLM (the hf backend on a CPU-only machine: the tiny profile)."""
    if rule in ("sft_model", "grpo_model"):
        return cfg["train"]["device"] == "cuda"
    if rule == "features":
        return cfg["probe"]["device"] == "cuda"
    return cfg["evaluate"]["backend"] == "vllm"


def rule_threads(rule: str, cfg: dict) -> int:
    """Cores of the rule's program (Snakemake exports OMP_NUM_THREADS etc. from them, capped at the machine's cores):
    all the cores a GPU job books where the config runs it on GPUs; else 1, as for every CPU rule, so that a CPU-only
    run (the tiny profile) runs its jobs side by side instead of giving each one all the cores (the tiny DAG on 2
    cores: 146 s against 235 s)."""
    b = booking(rule, cfg)
    return b.gpus * b.cpus_per_gpu if b and runs_on_gpus(rule, cfg) else 1


def rule_resources(rule: str, cfg: dict) -> dict:
    """The rule's Snakemake resources (`resources: **rule_resources(...)`): `gpu` (sbatch --gpus), `cpus_per_gpu`,
    `mem_mb`, `runtime` (minutes) and, for multi-GPU training, `nodes: 1`; {} for a rule on a CPU (the profile's
    default resources)."""
    b = booking(rule, cfg)
    if b is None:
        return {}
    out = {"gpu": b.gpus, "cpus_per_gpu": b.cpus_per_gpu, "mem_mb": b.mem_mb, "runtime": b.runtime}
    return out | ({"nodes": 1} if b.one_node else {})
