"""What SFT and GRPO share: the starting model, TrainingArguments common to both, the CSV training log, the save."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from medbridge import MedbridgeError
from medbridge.models.registry import ModelSource, check_local_dir, local_source, resolve

LOG_NAME = "training_log.csv"
T = TypeVar("T")


def init_source(cfg: dict, name_or_dir: str, dtype: str) -> ModelSource:
    """A config role / DAG-made model name (resolved by the registry), or a model directory."""
    from medbridge.artifacts.rq3 import model_spec

    if model_spec(cfg, name_or_dir) is not None:
        return replace(resolve(cfg, name_or_dir, "train"), dtype=dtype)
    if Path(name_or_dir).is_dir():
        check_local_dir(name_or_dir)
        return ModelSource(name_or_dir, name_or_dir, None, name_or_dir, None, False, dtype, True)
    raise MedbridgeError(
        f"--init-model {name_or_dir!r} is neither a model role ({sorted(cfg['models'])}) nor a model directory"
    )


def train_dtype(cfg: dict, section: dict) -> str:
    """float32 on CPU; on GPU the weights load in bf16 when the section trains in bf16 (DeepSpeed keeps fp32
    master weights), else float32."""
    return "bfloat16" if device(cfg) == "cuda" and section["bf16"] else "float32"


def device(cfg: dict) -> str:
    return cfg["train"]["device"]


def load_weights(src: ModelSource):
    """The registry's loading rules (safetensors only, allow-listed remote code, pinned revision), without moving the
    model: the Trainer places it, and under DeepSpeed ZeRO-3 it is already partitioned when from_pretrained returns."""
    import torch
    from transformers import AutoModelForImageTextToText

    if src.local:
        check_local_dir(src.path)
    src = local_source(src)  # a snapshot folder: TRL's vLLM engine is built from model.name_or_path
    return AutoModelForImageTextToText.from_pretrained(
        src.path,
        revision=src.revision,
        dtype=getattr(torch, src.dtype),
        trust_remote_code=src.trust_remote_code,
        use_safetensors=True,
    )


def load_for_training(src: ModelSource, section: dict, checkpoint: str | None = None):
    """(model, processor) to train: weights trainable, the processor's pixel bounds from the section if set. With a
    checkpoint, its weights: the Trainer's own resume restores optimizer, scheduler, RNG and step, but in
    transformers 5 its weight reload matches no key of a checkpoint saved under the legacy (converted) names and
    silently keeps the initial weights, so the weights come through from_pretrained here."""
    from medbridge.models.registry import load_processor

    processor = load_processor(src)
    bounds = {k: section[k] for k in ("min_pixels", "max_pixels") if k in section}
    if bounds:  # Qwen2-VL image processors keep their pixel bounds in `size`
        size = dict(processor.image_processor.size)
        size.update(
            {
                "shortest_edge": bounds.get("min_pixels", size.get("shortest_edge")),
                "longest_edge": bounds.get("max_pixels", size.get("longest_edge")),
            }
        )
        processor.image_processor.size = size
    model = load_weights(replace(src, path=checkpoint, revision=None, local=True) if checkpoint else src)
    model.train()
    return model, processor


def common_args(cfg: dict, section: dict, output_dir: str | Path) -> dict:
    """TrainingArguments shared by SFT and GRPO. On CPU: no bf16, no gradient checkpointing (TRL turns both on by
    default), use_cpu. Everywhere: seeded from the config, no reporting backends, checkpoints every save_steps."""
    on_gpu = device(cfg) == "cuda"
    optim = {"optim": section["optim"]} if "optim" in section else {}  # default: transformers' AdamW
    if section.get("momentum"):  # SGD's momentum, through transformers' optim_args (plain SGD has none)
        optim["optim_args"] = f"momentum={section['momentum']}"
    return dict(
        **optim,
        output_dir=str(output_dir),
        seed=cfg["seed"],
        data_seed=section.get("data_seed", cfg["seed"]),
        bf16=bool(on_gpu and section["bf16"]),
        gradient_checkpointing=bool(on_gpu and section.get("gradient_checkpointing", on_gpu)),
        use_cpu=not on_gpu,
        report_to="none",
        dataloader_num_workers=0,
        logging_steps=1,
        # Checkpoints (model, optimizer, scheduler, RNG states) every save_steps, so a killed job resumes.
        save_strategy="steps" if section.get("save_steps") else "no",
        save_steps=section.get("save_steps") or 500,
        save_total_limit=2,
        # weights only: ~1/7 of a 7B AdamW checkpoint, but nothing to resume the optimizer from (see resumable)
        save_only_model=bool(section["save_only_model"]),
        disable_tqdm=True,
        learning_rate=section["lr"],
        num_train_epochs=section["epochs"],
        max_steps=section["max_steps"],
        per_device_train_batch_size=section["batch_size"],
        gradient_accumulation_steps=section["grad_accum"],
        warmup_steps=section["warmup_ratio"],  # a float < 1 is a ratio of the total steps
        lr_scheduler_type=section["scheduler"],
        max_grad_norm=section["grad_clip"],
    )


def resumable(section: dict, work: Path) -> str | None:
    """The checkpoint a killed run resumes from; none under save_only_model (its checkpoints hold no optimizer,
    scheduler or RNG state: the Trainer, under DeepSpeed, cannot load them), so such a run starts over."""
    return None if section["save_only_model"] else last_checkpoint(work)


def training_log(trainer) -> list[dict]:
    """One row per logged optimizer step (loss, rewards by function, CARE bonus rate, KL, ...). The Trainer's own
    log history is restored from the checkpoint on resume, so a resumed run's log covers every step."""
    return [row for row in trainer.state.log_history if "train_runtime" not in row]


def save_model_dir(trainer, processor, out: str | Path, log_rows: list[dict]) -> Path:
    """save_pretrained model (safetensors) + processor + training_log.csv into `out`, atomically: written to a
    sibling temp directory and renamed, so a crash never leaves a directory the registry would take for a model.
    Every process takes part in the save (it gathers ZeRO-3 shards); only the main process touches the directories."""
    out = Path(out)
    tmp = out.parent / f".{out.name}.tmp"
    on_main_process(shutil.rmtree, tmp, True)
    trainer.save_model(str(tmp))  # gathers ZeRO-3 shards; writes on the main process
    on_main_process(_finish_model_dir, processor, tmp, out, log_rows)
    return out


def _finish_model_dir(processor, tmp: Path, out: Path, log_rows: list[dict]) -> None:
    import pandas as pd

    processor.save_pretrained(tmp)
    (tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle; the frozen config records the settings
    pd.DataFrame(log_rows).to_csv(tmp / LOG_NAME, index=False)
    check_local_dir(tmp)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def write_model_sidecar(cfg: dict, kind: str, init: str, train_items: list[str], out: str | Path) -> None:
    """`<model dir>.provenance.json`: the train settings, the training items and the starting weights."""
    from medbridge.provenance import write_sidecar

    src = init_source(cfg, init, train_dtype(cfg, cfg["train"][kind]))
    write_sidecar(out, cfg, ["train", "models"], inputs=train_items, models=[src])


def training_fingerprint(cfg: dict, kind: str, init: str, train_items: list[str]) -> dict:
    """Everything a training run's checkpoints depend on: its settings, the seed, the starting model's files (a
    retrained init must not resume the old one's checkpoints) and the training items."""
    from medbridge.fingerprint import model_fingerprint
    from medbridge.io import sha256_file

    section = cfg["train"][kind]
    return {
        "section": section,
        "seed": cfg["seed"],
        "init": init,
        "init_model": model_fingerprint(init_source(cfg, init, train_dtype(cfg, section))),
        "items": [sha256_file(p) for p in train_items],
    }


def on_main_process(fn: Callable[..., T], *args) -> T:
    """fn(*args) on the main process alone; every other process waits until it is done and gets its result.

    Under `accelerate launch` every rank runs this code, so a file-system side effect done by each (removing a stale
    work dir, writing its stamp, deleting a broken checkpoint, renaming the model folder) races: one rank removes
    what another is writing or loading. The process state is the one the TrainingArguments set up (build them
    first: they set the process group's timeout); alone, a CPU-only job joins over gloo, as TrainingArguments'
    use_cpu would. A failure on the main process is raised on every rank, so none waits for it forever."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    state = PartialState(cpu=not torch.cuda.is_available())  # no effect once initialised (the shared state)
    if state.num_processes == 1:
        return fn(*args)
    box: list = [None, None]  # [result, error message]
    failure = None
    if state.is_main_process:
        try:
            box[0] = fn(*args)
        except Exception as e:  # re-raised below, once the other ranks are told
            failure, box[1] = e, f"{type(e).__name__}: {e}"
    broadcast_object_list(box)  # the other ranks block here until the main process has finished fn
    if failure is not None:
        raise failure
    if box[1] is not None:
        raise MedbridgeError(f"the main process failed ({box[1]}); see its log above")
    return box[0]


def end_processes() -> None:
    """Every rank done, then the process group destroyed: a rank that exits with gloo's threads still running can
    die in `terminate called without an active exception` (SIGABRT), failing a job whose work is done."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def prepare_work_dir(work: Path, fingerprint: Callable[[], dict]) -> Path:
    """The Trainer's output_dir, kept between attempts: its checkpoints are resumed only if they were made with the
    same settings, init model and training items (a changed config starts over). Done by the main process alone,
    which also computes the fingerprint (it hashes the init model's files)."""
    on_main_process(_reset_work_dir, Path(work), fingerprint)
    return Path(work)


def _reset_work_dir(work: Path, fingerprint: Callable[[], dict]) -> None:
    from medbridge.config import config_hash
    from medbridge.io import write_text

    stamp = work / "medbridge-fingerprint.txt"
    want = config_hash(fingerprint())
    if work.exists() and (not stamp.exists() or stamp.read_text().strip() != want):
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    write_text(stamp, want + "\n")


def remove_work_dir(work: Path) -> None:
    """Drop the checkpoints once the model is saved (main process)."""
    on_main_process(shutil.rmtree, work, True)


def last_checkpoint(work: Path) -> str | None:
    """The newest complete checkpoint a killed attempt left in `work`, or None; the main process decides and removes
    the incomplete ones, and every rank resumes the one it chose. A kill during a save leaves a checkpoint without
    `trainer_state.json` (the Trainer writes it last): such a one is skipped and removed, so the resumed run saves
    that step again."""
    return on_main_process(_newest_complete_checkpoint, Path(work))


def _newest_complete_checkpoint(work: Path) -> str | None:
    steps = sorted(
        (p for p in work.glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()), key=lambda p: int(p.name[11:])
    )
    complete = [p for p in steps if (p / "trainer_state.json").is_file()]
    for p in set(steps) - set(complete):
        print(f"{p}: an interrupted save (no trainer_state.json); not resumed from", flush=True)
        shutil.rmtree(p, ignore_errors=True)
    if complete:
        print(f"resuming from {complete[-1]}", flush=True)
        return str(complete[-1])
    return None
