"""The SFT bridge: TRL's SFTTrainer on MCQ items (image + the paper's prompt -> medbridge.prompts.sft_target).

Rows are TRL conversational prompt/completion pairs, so TRL's collator masks the prompt and only the assistant turn
is trained (completion_only_loss). Full fine-tuning, or LoRA (peft) merged back into the weights before saving so
the result loads like any other model directory.
"""

from __future__ import annotations

from pathlib import Path

from medbridge.train.common import (
    common_args,
    init_source,
    load_for_training,
    prepare_work_dir,
    remove_work_dir,
    resumable,
    save_model_dir,
    train_dtype,
    training_fingerprint,
    training_log,
)
from medbridge.train.data import load_train_items, sft_dataset


def lora_config(section: dict):
    from peft import LoraConfig

    return LoraConfig(
        r=section["lora_r"],
        lora_alpha=section["lora_alpha"],
        lora_dropout=0.05,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        task_type="CAUSAL_LM",
    )


def train_sft(cfg: dict, init: str, train_items: list[str], out: str | Path) -> Path:
    from trl import SFTConfig, SFTTrainer

    section = cfg["train"]["sft"]
    out = Path(out)
    work = out.parent / f".{out.name}.work"  # the Trainer's output_dir: checkpoints
    # TrainingArguments first: they join the process group the work dir's barrier uses, and under DeepSpeed ZeRO-3
    # from_pretrained then loads partitioned.
    args = SFTConfig(
        **common_args(cfg, section, work),
        max_length=None,  # never truncate: a cut through the image tokens breaks the VLM input
        completion_only_loss=True,
    )
    prepare_work_dir(work, lambda: training_fingerprint(cfg, "sft", init, train_items))
    dataset = sft_dataset(load_train_items(train_items), section["prompts"])
    src = init_source(cfg, init, train_dtype(cfg, section))
    resume = resumable(cfg["train"]["sft"], work)
    model, processor = load_for_training(src, section, resume)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=lora_config(section) if section["lora"] else None,
    )
    trainer.train(resume_from_checkpoint=resume)
    if section["lora"]:
        trainer.model = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
    save_model_dir(trainer, processor, out, training_log(trainer))
    remove_work_dir(work)
    return out
