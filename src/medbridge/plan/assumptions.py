"""The plan's throughput assumptions (each a `medbridge plan` flag, documented by its help text) and its unit of
account, the `Job`."""

from __future__ import annotations

from dataclasses import dataclass, field


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
        2.5,
        "GiB per GPU a vLLM engine holds beside weights and KV cache (its profiling run's activations, CUDA graphs)",
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
