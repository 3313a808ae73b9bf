"""Kill a sampling step with SIGKILL at several points, rerun, and get exactly the uninterrupted run's output."""

import json
import signal
import subprocess
import sys
import time

import pytest

from medbridge.config import load_config
from medbridge.data.mcq import make_items
from medbridge.data.medmnist import npz_name
from medbridge.io import write_jsonl


def generate_cmd(cfg_path, items, out):
    return [
        sys.executable,
        "-m",
        "medbridge.cli",
        "generate",
        "--config",
        str(cfg_path),
        "--model",
        "base",
        "--items",
        str(items),
        "--out",
        str(out),
        "--device",
        "cpu",
    ]


@pytest.fixture()
def sampling_job(cfg_with_local_model, synthetic_dir, tmp_path):
    cfg = cfg_with_local_model
    cfg["evaluate"].update(shard_size=1, batch_size=1, max_new_tokens=16)
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    items = tmp_path / "items.jsonl"
    write_jsonl(items, make_items("organamnist", synthetic_dir / npz_name("organamnist", 64), "test", 1, 0)[:6])
    reference = tmp_path / "reference.jsonl"
    subprocess.run(generate_cmd(cfg_path, items, reference), check=True, capture_output=True)
    return cfg_path, items, reference


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_shards", [0, 1, 4])
def test_sigkilled_sampling_resumes_to_identical_output(sampling_job, tmp_path, kill_after_shards):
    cfg_path, items, reference = sampling_job
    out = tmp_path / f"killed-{kill_after_shards}.jsonl"
    shards = tmp_path / f"{out.name}.shards"
    proc = subprocess.Popen(generate_cmd(cfg_path, items, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list(shards.glob("shard-*.jsonl"))) >= kill_after_shards:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()  # the final file never appears half-written
    # a write cut by SIGKILL can leave only a hidden temp file, never a partial shard under its final name
    for shard in shards.glob("shard-*.jsonl") if shards.exists() else []:
        assert len(shard.read_text().splitlines()) == 1  # shard_size 1: complete or absent
    done_before = len(list(shards.glob("shard-*.jsonl"))) if shards.exists() else 0
    subprocess.run(generate_cmd(cfg_path, items, out), check=True, capture_output=True)
    assert out.read_bytes() == reference.read_bytes()
    assert not list(shards.glob(".*.tmp"))  # the rerun removed any temp file the killed attempt left
    assert done_before >= min(kill_after_shards, 6) or kill_after_shards == 0


def train_cmd(verb, cfg_path, init, items, out):
    return [
        sys.executable,
        "-m",
        "medbridge.cli",
        verb,
        "--config",
        str(cfg_path),
        "--init-model",
        str(init),
        "--train-items",
        str(items),
        "--out",
        str(out),
    ]


def weights(model_dir):
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


@pytest.fixture()
def training_job(cfg_with_local_model, tiny_model_dir, synthetic_dir, tmp_path):
    cfg = cfg_with_local_model
    cfg["train"]["sft"].update(max_steps=12, save_steps=4, batch_size=4, prompts=["eval"], warmup_ratio=0.0)
    cfg["train"]["grpo"].update(
        max_steps=6, save_steps=2, num_generations=8, batch_size=16, max_completion_length=24, lr=1e-3
    )
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    items = tmp_path / "train.jsonl"
    write_jsonl(items, make_items("pneumoniamnist", synthetic_dir / npz_name("pneumoniamnist", 64), "train", 8, 0))
    return cfg_path, items


def _state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def resume_in_process(cfg_path, init, items, out, monkeypatch) -> dict:
    """Rerun a killed GRPO job in this process (as `medbridge grpo` does) and return the weights the Trainer starts
    its first resumed step from (on_train_begin: after every checkpoint load, before any update)."""
    from transformers import TrainerCallback

    from medbridge.train import grpo

    seen = {}

    class Snapshot(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            seen.update(_state(model))

    build = grpo.build_trainer

    def build_with_snapshot(*args, **kwargs):
        trainer, processor = build(*args, **kwargs)
        trainer.add_callback(Snapshot())
        return trainer, processor

    monkeypatch.setattr(grpo, "build_trainer", build_with_snapshot)
    grpo.train_grpo(json.loads(cfg_path.read_text()), str(init), [str(items)], out)
    return seen


@pytest.fixture(scope="module")
def grpo_init(tiny_cfg, tiny_model_dir, synthetic_dir, tmp_path_factory):
    """A briefly SFT-ed tiny model: it writes the answer format and picks letters with some skill, so GRPO's rollouts
    earn different rewards and its steps change the weights (from the random model every reward is 0 and no step
    moves a weight, so a resumed run could not be told from a fresh one)."""
    import copy

    from medbridge.train.sft import train_sft

    cfg = copy.deepcopy(tiny_cfg)
    cfg["models"] = {"base": {"source": "local", "path": str(tiny_model_dir)}}
    cfg["train"]["sft"].update(max_steps=40, save_steps=None, batch_size=4, lr=5e-3, prompts=["rl"], warmup_ratio=0.0)
    root = tmp_path_factory.mktemp("grpo_init")
    items = root / "train.jsonl"
    write_jsonl(items, make_items("pneumoniamnist", synthetic_dir / npz_name("pneumoniamnist", 64), "train", 8, 0))
    return train_sft(cfg, "base", [str(items)], root / "sft")


@pytest.mark.slow
@pytest.mark.parametrize("verb,kill_at_checkpoint", [("sft", 4), ("sft", 8), ("grpo", 4)])
def test_sigkilled_training_resumes_from_its_checkpoint(
    request, training_job, tiny_model_dir, tmp_path, verb, kill_at_checkpoint, monkeypatch, capfd
):
    from medbridge.train.common import init_source, load_weights

    cfg_path, items = training_job
    init = request.getfixturevalue("grpo_init") if verb == "grpo" else tiny_model_dir
    reference = tmp_path / "reference"
    subprocess.run(train_cmd(verb, cfg_path, init, items, reference), check=True, capture_output=True)

    out = tmp_path / "killed"
    work = tmp_path / ".killed.work"
    proc = subprocess.Popen(
        train_cmd(verb, cfg_path, init, items, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    checkpoint = work / f"checkpoint-{kill_at_checkpoint}"
    while time.time() < deadline and proc.poll() is None and not (checkpoint / "trainer_state.json").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists(), "the job finished or failed before writing the checkpoint it was to be killed at"
    assert not out.exists()  # no model directory the registry could mistake for a finished one

    if verb == "sft":
        rerun = subprocess.run(train_cmd(verb, cfg_path, init, items, out), capture_output=True, text=True)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert "resuming from" in rerun.stdout + rerun.stderr
    else:
        # the checkpoint the rerun must start from (made before the rerun can write a newer one)
        cfg = load_config(cfg_path)
        ckpt = _state(load_weights(init_source(cfg, str(checkpoint), "float32")))
        initial = _state(load_weights(init_source(cfg, str(init), "float32")))
        assert _max_diff(ckpt, initial) > 0, "the checkpoint holds the initial weights: the comparison proves nothing"
        started = resume_in_process(cfg_path, init, items, out, monkeypatch)
        assert "resuming from" in capfd.readouterr().out
        # the resumed steps start from the checkpoint's weights, not the initial ones (transformers 5's own reload
        # of a legacy-named checkpoint silently keeps whatever the model holds)
        assert _max_diff(started, ckpt) == 0, "the resumed run does not start from the checkpoint's weights"
        final = _state(load_weights(init_source(cfg, str(out), "float32")))
        assert _max_diff(final, initial) > 0 and _max_diff(final, ckpt) > 0  # it trained on after the restart
    log = (out / "training_log.csv").read_text().splitlines()
    assert len(log) - 1 == len((reference / "training_log.csv").read_text().splitlines()) - 1  # every step logged
    a, b = weights(reference), weights(out)
    if verb == "sft":  # SFT resumes exactly: same batches, restored RNG and optimizer state
        worst = max((a[k] - b[k]).abs().max().item() for k in a)
        assert worst == 0, f"resumed SFT weights differ by up to {worst}"
    assert not work.exists()  # the work directory is cleaned once the model is saved
