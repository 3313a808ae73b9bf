"""GRPO (optionally GRPO-CARE) with TRL's GRPOTrainer on MCQ items and the paper's RL prompt.

Settings as the authors run GRPO-CARE: rewards accuracy + format (+ optional length bonus) + the CARE consistency
bonus; advantage (r - mean) / (std + 1e-4) within each prompt's group (TRL scale_rewards="group"); per-sequence token
mean then batch mean (TRL loss_type="grpo"); KL weight beta. The CARE pieces plug into TRL's extension points: the
bonus is a reward function (medbridge.train.care.CareBonus) and the EMA update of its reference model is TRL's
SyncRefModelCallback. With beta > 0 the EMA reference is TRL's own KL reference (as in the authors' trainer: one
reference model for both); with beta = 0 a separate reference copy of the initial model is loaded here.
care.enabled false gives vanilla GRPO.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from medbridge.train.care import CareBonus, CareSettings
from medbridge.train.common import common_args, init_source, last_checkpoint, load_for_training, load_weights
from medbridge.train.common import prepare_work_dir, save_model_dir, train_dtype, training_fingerprint, training_log
from medbridge.train.data import grpo_dataset, load_train_items
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
        "temperature": section.get("temperature", 1.0),
        "top_p": section.get("top_p", 1.0),
        "top_k": section.get("top_k", 50),
        "min_p": section.get("min_p"),
        "repetition_penalty": section.get("repetition_penalty", 1.0),
        "vllm_importance_sampling_correction": section.get("vllm_importance_sampling_correction", False),
    }


def grpo_args(cfg: dict, section: dict, care: CareSettings, output_dir: Path, revision: str | None,
              reward_weights: list[float] | None = None):  # fmt: skip
    from trl import GRPOConfig

    vllm = {}
    if section.get("use_vllm", False):
        vllm = dict(use_vllm=True, vllm_mode=section.get("vllm_mode", "colocate"),
                    vllm_gpu_memory_utilization=section.get("vllm_gpu_memory_utilization", 0.3))  # fmt: skip
    beta = section.get("beta", 0.0)
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
        sync_ref_model=care.enabled and beta > 0,  # TRL's KL reference becomes the EMA reference
        ref_model_mixup_alpha=1.0 - care.ema_decay,
        ref_model_sync_steps=care.ema_every,
        model_init_kwargs={"revision": revision} if revision and beta > 0 else None,  # TRL loads its KL reference
        **vllm,
    )


METRICS = (answer_not_a_letter,)  # computed and logged by TRL like rewards, weight 0: never in the summed reward


def reward_weights(funcs: list) -> list[float]:
    return [0.0 if f in METRICS else 1.0 for f in funcs]


def reward_functions(section: dict, care: CareSettings) -> list:
    """The rewards (accuracy, format, the optional length bonus, CARE's bonus last) and the logged metrics."""
    funcs = [accuracy_reward, format_reward, answer_not_a_letter]
    if section.get("length_bonus", False):
        funcs.append(make_length_reward(section["num_generations"]))
    if care.enabled:
        funcs.append(CareBonus(care, section["num_generations"]))
    return funcs


def attach_care(trainer, bonus: CareBonus, load_reference) -> None:
    """Give the CARE bonus its EMA reference: TRL's reference model if it keeps one (beta > 0, already EMA-synced
    by TRL), else a fresh copy of the initial model, prepared like TRL prepares its own and EMA-synced by
    TRL's SyncRefModelCallback every ema_every steps."""
    from trl.models import prepare_deepspeed, prepare_fsdp
    from trl.trainer.callbacks import SyncRefModelCallback

    ref = trainer.ref_model
    if ref is None:
        ref = load_reference().eval()
        if trainer.is_deepspeed_enabled:
            ref = prepare_deepspeed(ref, trainer.accelerator)
        elif trainer.is_fsdp_enabled:
            ref = prepare_fsdp(ref, trainer.accelerator)
        else:
            ref = trainer.accelerator.prepare_model(ref, evaluation_mode=True)
        trainer.add_callback(SyncRefModelCallback(ref_model=ref, accelerator=trainer.accelerator))
    bonus.bind(trainer, ref)


def build_trainer(cfg: dict, init: str, train_items: list[str], work: Path, resume: str | None = None):
    """(GRPOTrainer with the CARE bonus attached when enabled, processor)."""
    from trl import GRPOTrainer

    section = cfg["train"]["grpo"]
    care = CareSettings.from_config(section.get("care", {"enabled": False}))
    dataset = grpo_dataset(load_train_items(train_items), section.get("prompt", "rl"),
                           section.get("letter_instruction", False))  # fmt: skip
    src = init_source(cfg, init, train_dtype(cfg, section))
    funcs = reward_functions(section, care)
    # the arguments before the model (DeepSpeed ZeRO-3 init)
    args = grpo_args(cfg, section, care, work, src.revision, reward_weights(funcs))
    model, processor = load_for_training(src, section, resume)
    trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=dataset,
                          processing_class=processor)  # fmt: skip
    if care.enabled:
        attach_care(trainer, funcs[-1], lambda: load_weights(src))
    return trainer, processor


def train_grpo(cfg: dict, init: str, train_items: list[str], out: str | Path) -> Path:
    out = Path(out)
    fingerprint = training_fingerprint(cfg, "grpo", init, train_items)
    work = prepare_work_dir(out.parent / f".{out.name}.work", fingerprint)  # the Trainer's output_dir: checkpoints
    resume = last_checkpoint(work)  # the CARE reference restarts from the init model's weights
    trainer, processor = build_trainer(cfg, init, train_items, work, resume)
    trainer.train(resume_from_checkpoint=resume)
    save_model_dir(trainer, processor, out, training_log(trainer))
    shutil.rmtree(work, ignore_errors=True)
    return out
