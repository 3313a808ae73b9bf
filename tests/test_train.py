"""SFT and GRPO(-CARE) on the tiny model: real TRL steps that change the weights and save a loadable model."""

import copy
import json
import sys

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from medbridge import MedbridgeError

from .conftest import consistent


def _weights(model_dir):
    out = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def _changed(a: dict, b: dict) -> int:
    return sum(not torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def train_cfg(tiny_cfg, tiny_model_dir, synthetic_dir, tmp_path_factory):
    """Tiny config with `base` = the session's tiny model, results in a temp dir, and pneumoniamnist train items."""
    from medbridge.data.mcq import make_items
    from medbridge.data.medmnist import npz_name
    from medbridge.io import write_jsonl

    cfg = copy.deepcopy(tiny_cfg)
    root = tmp_path_factory.mktemp("train")
    cfg["run_name"] = "pytest-train"
    cfg["models"] = {"base": {"source": "local", "path": str(tiny_model_dir)}}
    cfg["evaluate"]["models"] = ["base"]
    items = root / "pneumonia_train.jsonl"
    npz = synthetic_dir / npz_name("pneumoniamnist", 64)
    write_jsonl(items, make_items("pneumoniamnist", npz, "train", 10, seed=0))
    cfg["train"]["sft"].update(max_steps=60, batch_size=4, lr=5e-3, prompts=["eval", "rl"], warmup_ratio=0.0)
    cfg["train"]["grpo"].update(
        num_generations=4,
        batch_size=8,
        max_steps=3,
        max_completion_length=20,
        lr=5e-3,
        care={**cfg["train"]["grpo"]["care"], "enabled": True, "ema": "ema", "ema_every": 1, "ema_decay": 0.5},
    )
    return consistent(cfg), root, items


@pytest.fixture(scope="module")
def sft_dir(train_cfg):
    from medbridge.train.sft import train_sft

    cfg, root, items = train_cfg
    return train_sft(cfg, "base", [str(items)], root / "models" / "sft")


def test_sft_trains_only_the_assistant_turn(train_cfg, tiny_model_dir):
    from transformers import AutoProcessor
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from medbridge.io import read_jsonl
    from medbridge.prompts import sft_target
    from medbridge.train.data import sft_dataset

    _, _, items = train_cfg
    item = read_jsonl(items)[0]
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    collate = DataCollatorForVisionLanguageModeling(processor, completion_only_loss=True)
    batch = collate([sft_dataset([item], ["eval"])[0]])
    trained = batch["labels"][0][batch["labels"][0] != -100]
    assert processor.tokenizer.decode(trained) == sft_target(item) + "<|im_end|>\n"
    assert (batch["labels"][0] == -100).sum() > len(trained)  # the prompt (and image tokens) are masked


def test_sft_changes_weights_and_saves_a_model_the_registry_loads(train_cfg, sft_dir, tiny_model_dir):
    from medbridge.models.registry import load

    cfg, _, _ = train_cfg
    assert _changed(_weights(sft_dir), _weights(tiny_model_dir)) > 10
    log = pd.read_csv(sft_dir / "training_log.csv")
    assert len(log) == 60 and log.loss.iloc[-5:].mean() < log.loss.iloc[:5].mean()
    assert not any(p.name.startswith(".") for p in sft_dir.parent.iterdir())  # no temp or work dirs left
    model, processor, _ = load({**cfg, "models": {"sft": {"source": "local", "path": str(sft_dir)}}}, "sft")
    assert model.config.model_type == "qwen2_5_vl" and processor.tokenizer.padding_side == "left"


def test_grpo_with_care_updates_policy_and_ema_reference_and_logs(train_cfg, sft_dir):
    from medbridge.train.common import save_model_dir, training_log
    from medbridge.train.grpo import build_trainer

    cfg, root, items = train_cfg
    trainer, processor = build_trainer(cfg, str(sft_dir), [str(items)], root / "grpo.work")
    care = trainer.reward_funcs[-1]
    assert trainer.reward_func_names == ["accuracy_reward", "format_reward", "answer_not_a_letter", "care_bonus"]
    assert trainer.reward_weights.tolist() == [1.0, 1.0, 0.0, 1.0]  # the letter metric is logged, never rewarded
    init = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    policy = trainer.model.state_dict()
    ref = care.ref_model.state_dict()
    moved = [k for k in init if not torch.equal(init[k], policy[k])]
    assert moved, "GRPO left every weight unchanged"
    # EMA every step with decay 0.5: the reference left the initial weights and trails the policy
    d_init = sum((init[k] - policy[k]).norm() for k in moved)
    d_ref = sum((ref[k] - policy[k]).norm() for k in moved)
    assert 0 < d_ref < d_init
    out = save_model_dir(trainer, processor, root / "models" / "rl", training_log(trainer))
    rows = pd.read_csv(out / "training_log.csv")
    assert len(rows) == 3
    for col in (
        "loss",
        "rewards/accuracy_reward/mean",
        "rewards/format_reward/mean",
        "rewards/care_bonus/mean",
        "care/bonus_rate",
        "rewards/answer_not_a_letter/mean",
    ):
        assert col in rows.columns, col
    assert _changed(_weights(out), _weights(sft_dir)) > 0


def test_grpo_settings_follow_the_authors_and_care_switches_off(tiny_cfg):
    from medbridge.train.care import CareSettings
    from medbridge.train.grpo import grpo_args, reward_functions

    section = dict(tiny_cfg["train"]["grpo"])
    care = CareSettings.from_config(section["care"])
    args = grpo_args(tiny_cfg, section, "/tmp/unused")
    assert (args.loss_type, args.scale_rewards, args.beta) == ("grpo", "group", 0.0)
    # every rollout knob explicit (a checkpoint's generation_config must not fill any): the authors' sampling
    assert (args.temperature, args.top_p, args.top_k, args.repetition_penalty) == (1.0, 1.0, 50, 1.0)
    assert not args.bf16 and not args.gradient_checkpointing and args.use_cpu and args.report_to == []
    # never TRL's reference sync: under ZeRO-3 it gathers both whole models at once (CARE's own callback instead)
    with_kl = grpo_args(tiny_cfg, {**section, "beta": 0.04}, "/tmp/unused")
    assert not args.sync_ref_model and not with_kl.sync_ref_model
    names = [getattr(f, "__name__", "") for f in reward_functions(section, care)]
    assert names == ["accuracy_reward", "format_reward", "answer_not_a_letter", "care_bonus"]
    vanilla = CareSettings.from_config({**section["care"], "enabled": False})
    assert [f.__name__ for f in reward_functions({**section, "length_bonus": True}, vanilla)] == [
        "accuracy_reward",
        "format_reward",
        "answer_not_a_letter",
        "length_bonus",
    ]


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_care_reference_is_frozen_unless_ema_is_asked_for(train_cfg, tiny_model_dir, beta):
    """care.ema frozen (the default): no callback moves the CARE reference; ema: CARE's one-pair-at-a-time callback,
    never TRL's. With beta > 0 the CARE reference is TRL's KL reference."""
    from trl.trainer.callbacks import SyncRefModelCallback

    from medbridge.train.care import EmaReferenceCallback
    from medbridge.train.grpo import build_trainer

    cfg, root, items = train_cfg
    for ema in ("frozen", "ema"):
        c = copy.deepcopy(cfg)
        c["train"]["grpo"].update(beta=beta, care={**c["train"]["grpo"]["care"], "ema": ema})
        trainer, _ = build_trainer(c, "base", [str(items)], root / f"ref-{ema}.work")
        kinds = [type(cb) for cb in trainer.callback_handler.callbacks]
        assert SyncRefModelCallback not in kinds
        assert (EmaReferenceCallback in kinds) == (ema == "ema")
        ref = trainer.reward_funcs[-1].ref_model
        assert (ref is trainer.ref_model) == (beta > 0) and ref is not trainer.model


def test_init_model_is_a_role_or_a_directory(train_cfg, tiny_model_dir, tmp_path):
    from medbridge.train.common import init_source

    cfg, _, _ = train_cfg
    assert init_source(cfg, "base", "float32").path == str(tiny_model_dir)
    assert init_source(cfg, str(tiny_model_dir), "float32").local
    with pytest.raises(MedbridgeError, match="neither a model role"):
        init_source(cfg, str(tmp_path / "nope"), "float32")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MedbridgeError, match="safetensors"):
        init_source(cfg, str(tmp_path / "empty"), "float32")


def test_training_items_are_checked(tmp_path):
    from medbridge.io import write_jsonl
    from medbridge.train.data import load_train_items

    bad = tmp_path / "bad.jsonl"
    write_jsonl(bad, [{"id": "x", "question": "q", "options": {"A": "a"}, "answer": "B", "images": []}])
    with pytest.raises(MedbridgeError, match="answers 'B'"):
        load_train_items([bad])
    with pytest.raises(MedbridgeError, match="--train-items"):
        load_train_items([])


def test_accelerate_launch_only_when_configured(tiny_cfg, tmp_path, monkeypatch):
    from medbridge.train.launch import launch_command

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert launch_command(tiny_cfg, ["grpo", "--out", "x"]) is None
    acc = tmp_path / "zero3.yaml"
    acc.write_text("distributed_type: DEEPSPEED\n")
    cfg = {**tiny_cfg, "train": {**tiny_cfg["train"], "accelerate_config": str(acc)}}
    cmd = launch_command(cfg, ["grpo", "--out", "x"], gpus=4, port=29617, cores=32)
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert cmd[3:5] == ["--config_file", str(acc)]
    # one process per GPU held, on the given port, the job's cores split over them
    assert cmd[5:13] == [
        "--num_processes",
        "4",
        "--num_machines",
        "1",
        "--main_process_port",
        "29617",
        "--num_cpu_threads_per_process",
        "8",
    ]
    assert cmd[13:] == ["-m", "medbridge.cli", "grpo", "--out", "x"]
    with pytest.raises(MedbridgeError, match="holds no GPU"):
        launch_command(cfg, ["grpo"], gpus=0)
    ddp = tmp_path / "ddp.yaml"
    ddp.write_text("distributed_type: MULTI_GPU\n")
    cfg["train"]["accelerate_config"] = str(ddp)
    assert launch_command(cfg, ["grpo"], gpus=1) is None  # data parallel over one process: train here
    monkeypatch.setenv("LOCAL_RANK", "0")  # inside a launched worker: train here
    assert launch_command(cfg, ["grpo"], gpus=4) is None
    monkeypatch.delenv("LOCAL_RANK")
    cfg["train"]["accelerate_config"] = str(tmp_path / "missing.yaml")
    with pytest.raises(MedbridgeError, match="does not exist"):
        launch_command(cfg, ["grpo"])


def test_launch_follows_the_allocation(monkeypatch):
    """Processes = the GPUs SLURM gave the job (CUDA_VISIBLE_DEVICES); a port nobody listens on, new each time."""
    from medbridge.train.launch import free_port, gpus_held

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert gpus_held() == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpus_held() == 0
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "4")
    assert gpus_held() == 4
    port = free_port()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # it was free
        s.listen()
        assert free_port() != port  # and a second job on this node gets another


def test_config_files_carry_the_training_launch(tmp_path):
    from medbridge.config import PROJECT_ROOT, load_config

    paper = load_config(PROJECT_ROOT / "config" / "paper.yaml")
    acc = PROJECT_ROOT / paper["train"]["accelerate_config"]
    text = acc.read_text()
    # ZeRO-3 as the authors; the process count is not fixed here but follows the job's GPUs (train/launch.py)
    assert "zero_stage: 3" in text and "\nnum_processes:" not in text
    assert paper["train"]["sft"]["save_steps"] and paper["train"]["grpo"]["save_steps"]  # a requeued job resumes
    assert json.dumps(paper["train"]["grpo"]["care"], sort_keys=True) == json.dumps(
        {
            "enabled": True,
            "span": "authors",
            "ema": "frozen",
            "ema_decay": 0.995,
            "ema_every": 10,
            "conf_clamp": 0.95,
            "conf_margin": 0.01,
            "bonus_weight": 0.5,
        },
        sort_keys=True,
    )


def test_pixel_bounds_reach_the_processor(train_cfg):
    from PIL import Image

    from medbridge.train.common import init_source, load_for_training

    cfg, _, _ = train_cfg
    src = init_source(cfg, "base", "float32")
    image = Image.new("RGB", (64, 64))
    _, default = load_for_training(src, {})
    _, small = load_for_training(src, {"max_pixels": 784, "min_pixels": 784})
    grid = lambda p: p.image_processor(images=[image], return_tensors="pt")["image_grid_thw"].tolist()  # noqa: E731
    assert grid(default) == [[1, 4, 4]] and grid(small) == [[1, 2, 2]]


def test_resume_skips_a_checkpoint_whose_save_was_killed(tmp_path):
    """A kill during a save (a preemption) leaves a checkpoint without trainer_state.json, which the Trainer writes
    last; resuming from it fails to load. The newest complete one is resumed and the broken one removed."""
    from medbridge.train.common import last_checkpoint

    for step, files in ((2, ["config.json", "model.safetensors", "trainer_state.json"]), (4, ["config.json"])):
        ckpt = tmp_path / f"checkpoint-{step}"
        ckpt.mkdir()
        for name in files:
            (ckpt / name).write_text("{}")
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    assert not (tmp_path / "checkpoint-4").exists()
    assert last_checkpoint(tmp_path / "none") is None


def test_sgd_momentum_reaches_the_optimizer(tiny_cfg, tmp_path):
    """train.grpo.momentum becomes torch SGD's momentum (transformers' optim_args); absent, plain SGD has none."""
    import copy

    from transformers import TrainingArguments
    from transformers.trainer_optimizer import OptimizerContext, _get_sgd

    from medbridge.train.common import common_args

    section = copy.deepcopy(tiny_cfg["train"]["grpo"])
    for momentum, want in ((0.9, 0.9), (None, None)):
        section["momentum"] = momentum
        args = TrainingArguments(**common_args(tiny_cfg, section, tmp_path))
        optim_args = dict(kv.split("=") for kv in args.optim_args.split(",")) if args.optim_args else {}
        _, kwargs = _get_sgd(
            OptimizerContext(args=args, model=None, optimizer_kwargs={"lr": 0.1}, adam_kwargs={}, optim_args=optim_args)
        )
        assert args.optim == "sgd" and kwargs.get("momentum") == want
