"""GRPO (optionally GRPO-CARE) with TRL's GRPOTrainer on MCQ items and the paper's RL prompt.

Settings as the authors run GRPO-CARE: rewards accuracy + format (+ optional length bonus) + the CARE consistency
bonus; advantage (r - mean) / (std + 1e-4) within each prompt's group (TRL scale_rewards="group"); per-sequence token
mean then batch mean (TRL loss_type="grpo"); KL weight beta. The CARE pieces plug into TRL's extension points: the
bonus is a reward function (medbridge.train.care.CareBonus) and the EMA update of its reference model, when
`care.ema` is `ema`, a TrainerCallback (care.EmaReferenceCallback: TRL's SyncRefModelCallback formula, one parameter
pair gathered at a time). With beta > 0 the CARE reference is TRL's own KL reference (as in the authors' trainer: one
reference model for both); with beta = 0 a separate reference copy of the initial model is loaded here.
care.enabled false gives vanilla GRPO.
"""

from __future__ import annotations

from pathlib import Path

from medbridge.models.registry import load_processor
from medbridge.train.care import CareBonus, CareSettings, EmaReferenceCallback
from medbridge.train.common import (
    common_args,
    init_source,
    load_for_training,
    load_weights,
    prepare_work_dir,
    remove_work_dir,
    resumable,
    save_model_dir,
    train_dtype,
    training_fingerprint,
    training_log,
)
from medbridge.train.data import grpo_dataset, load_train_items, with_fitted_images
from medbridge.train.rewards import accuracy_reward, answer_not_a_letter, format_reward, make_length_reward


def rollout_settings(section: dict) -> dict:
    """Every TRL sampling/loss knob whose TRL default differs from what the authors' trainer did, set explicitly.

    GRPO-CARE (grpo_trainer_ref_ema.py, Qwen2VLGRPOTrainerRefEMA.__init__ and compute_loss) samples its rollouts with
    the policy itself (HF generate) under a fresh GenerationConfig(do_sample=True, temperature=1, top_p, max_new_tokens,
    num_return_sequences, pad_token_id), and its loss has no importance weights. So, as the authors:
      - top_k 50: GenerationConfig's default (TRL's default is 0, i.e. no top-k filtering);
      - repetition_penalty 1.0 and no min_p: GenerationConfig's defaults (TRL's are the same; explicit, so a
        checkpoint's generation_config.json cannot change them);
      - vllm_importance_sampling_correction off: TRL 1.x, with use_vllm, by default reweights the loss by the ratio of
        the trainer's to vLLM's token probabilities (truncated IS); the authors sampled with the trained model itself,
        so their loss has no such term. Only meaningful with use_vllm; set either way.
    Each is a `train.grpo` key (docs/FIDELITY.md, "TRL knobs")."""
    return {
        "temperature": section["temperature"],
        "top_p": section["top_p"],
        "top_k": section["top_k"],
        "min_p": section.get("min_p"),
        "repetition_penalty": section["repetition_penalty"],
        "vllm_importance_sampling_correction": section["vllm_importance_sampling_correction"],
    }


def grpo_args(
    cfg: dict,
    section: dict,
    output_dir: Path,
    max_model_len: int | None = None,
    reward_weights: list[float] | None = None,
):
    """GRPOConfig. `max_model_len`: the colocated vLLM engine's context (medbridge.engine); TRL's default None
    leaves vLLM at the checkpoint's whole context, which cannot start beside the trainer (issue #20).
    `reward_weights`: 0 for the logged metrics (reward_weights())."""
    from trl import GRPOConfig

    vllm = {}
    if section["use_vllm"]:
        vllm = dict(
            use_vllm=True,
            vllm_mode=section["vllm_mode"],
            vllm_gpu_memory_utilization=section["vllm_gpu_memory_utilization"],
            vllm_max_model_length=max_model_len,
        )
    beta = section["beta"]
    return GRPOConfig(
        **common_args(cfg, section, output_dir),
        num_generations=section["num_generations"],
        max_completion_length=section["max_completion_length"],
        **rollout_settings(section),
        beta=beta,
        loss_type="grpo",
        scale_rewards="group",
        remove_unused_columns=False,  # the reward functions read the `answer` column
        reward_weights=reward_weights,  # 0 for logged metrics (answer_not_a_letter), 1 for rewards
        sync_ref_model=False,  # TRL's sync gathers both whole models under ZeRO-3; CARE's EMA callback replaces it
        **vllm,
    )


METRICS = (answer_not_a_letter,)  # computed and logged by TRL like rewards, weight 0: never in the summed reward


def reward_weights(funcs: list) -> list[float]:
    return [0.0 if f in METRICS else 1.0 for f in funcs]


def reward_functions(section: dict, care: CareSettings) -> list:
    """The rewards (accuracy, format, the optional length bonus, CARE's bonus last) and the logged metrics."""
    funcs = [accuracy_reward, format_reward, answer_not_a_letter]
    if section["length_bonus"]:
        funcs.append(make_length_reward(section["num_generations"]))
    if care.enabled:
        funcs.append(CareBonus(care, section["num_generations"]))
    return funcs


def attach_care(trainer, bonus: CareBonus, load_reference) -> None:
    """Give the CARE bonus its reference: TRL's KL reference model if it keeps one (beta > 0), else a fresh copy of
    the initial model, prepared as TRL prepares its own; with `ema: ema`, moved toward the policy every ema_every
    steps (care.EmaReferenceCallback)."""
    from trl.models import prepare_deepspeed, prepare_fsdp

    ref = trainer.ref_model
    if ref is None:
        ref = load_reference().eval()
        if trainer.is_deepspeed_enabled:
            ref = prepare_deepspeed(ref, trainer.accelerator)
        elif trainer.is_fsdp_enabled:
            ref = prepare_fsdp(ref, trainer.accelerator)
        else:
            ref = trainer.accelerator.prepare_model(ref, evaluation_mode=True)
    if bonus.settings.ema == "ema":
        trainer.add_callback(EmaReferenceCallback(ref, trainer.accelerator, bonus.settings))
    bonus.bind(trainer, ref)


def collapse_runs(ids: list[int], token: int) -> list[int]:
    """`ids` with every run of `token` cut to its first."""
    return [t for i, t in enumerate(ids) if t != token or i == 0 or ids[i - 1] != token]


def one_placeholder_per_image(trainer, image_token_id: int) -> None:
    """TRL 1.16 hands its colocated vLLM the prompt ids its processor already expanded (one <|image_pad|> per image
    token); vLLM expands the first pad of each run again and keeps the rest as text, so every rollout would see
    stray pad tokens the loss does not (huggingface/trl#6294, open; reproduced on vLLM's CPU build in
    tests/test_trl_vllm.py). Here each run is cut to one pad before vLLM; the loss keeps TRL's expanded ids (TRL
    drops the prompt ids vLLM returns)."""
    original = trainer.vllm_generation.generate

    def generate(prompts, images, *args, **kwargs):
        if images is not None:
            prompts = [collapse_runs(list(p), image_token_id) for p in prompts]
        return original(prompts, images, *args, **kwargs)

    trainer.vllm_generation.generate = generate


def rollout_context(cfg: dict, section: dict, src) -> int:
    """max_model_len of TRL's vLLM engine: images at the trainer's pixel bound (the images are resized to it, so
    vLLM sees no larger), the prompt allowance and max_completion_length, within the model's own context."""
    from medbridge.engine import max_model_len, model_context, processor_max_pixels
    from medbridge.models.registry import local_source

    pixels = section.get("max_pixels") or processor_max_pixels(load_processor(src))
    return max_model_len(cfg, "grpo", pixels, model_context(local_source(src).path))


def build_trainer(cfg: dict, init: str, train_items: list[str], work: Path, resume: str | None = None, args=None):
    """(GRPOTrainer with the CARE bonus attached when enabled, processor). `args`: the GRPOConfig if already built
    (grpo_config)."""
    from trl import GRPOTrainer

    section = cfg["train"]["grpo"]
    care = CareSettings.from_config(section["care"])
    dataset = grpo_dataset(load_train_items(train_items), section["prompt"], section["letter_instruction"])
    src = init_source(cfg, init, train_dtype(cfg, section))
    args = args or grpo_config(cfg, init, work)  # before the model (DeepSpeed ZeRO-3 init)
    model, processor = load_for_training(src, section, resume)
    funcs = reward_functions(section, care)
    if section["use_vllm"]:  # vLLM resizes with the checkpoint's own bounds; HF rollouts use the trainer's
        dataset = with_fitted_images(dataset, processor, load_processor(src))
    trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=dataset, processing_class=processor)
    if section["use_vllm"] and args.vllm_mode == "colocate":  # server mode places features by the runs
        one_placeholder_per_image(trainer, processor.image_token_id)
    if care.enabled:
        attach_care(trainer, funcs[-1], lambda: load_weights(src))
    return trainer, processor


def grpo_config(cfg: dict, init: str, work: Path):
    """The run's GRPOConfig (its TrainingArguments), output_dir `work`, with the colocated engine's context."""
    section = cfg["train"]["grpo"]
    care = CareSettings.from_config(section["care"])
    src = init_source(cfg, init, train_dtype(cfg, section))
    context = rollout_context(cfg, section, src) if section["use_vllm"] else None
    weights = reward_weights(reward_functions(section, care))  # the order build_trainer passes them in
    return grpo_args(cfg, section, work, context, weights)


def train_grpo(cfg: dict, init: str, train_items: list[str], out: str | Path) -> Path:
    out = Path(out)
    work = out.parent / f".{out.name}.work"  # the Trainer's output_dir: checkpoints
    args = grpo_config(cfg, init, work)  # first: they join the process group the work dir's barrier uses
    prepare_work_dir(work, lambda: training_fingerprint(cfg, "grpo", init, train_items))
    resume = resumable(cfg["train"]["grpo"], work)  # the CARE reference restarts from the init model's weights
    trainer, processor = build_trainer(cfg, init, train_items, work, resume, args)
    trainer.train(resume_from_checkpoint=resume)
    save_model_dir(trainer, processor, out, training_log(trainer))
    remove_work_dir(work)
    return out
