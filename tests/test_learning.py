"""GRPO-CARE learns: the real TRL GRPOTrainer with the project's rewards and CARE bonus, on CPU, raises the accuracy
it is rewarded for, on the training rollouts and on held-out items, while the same run with the reward inverted
does not.

Set-up: a tiny model SFT-ed for a few steps on PneumoniaMNIST (two options): it writes the answer format, answers
"B" greedily for every image, and samples the right letter on a fraction of rollouts (support, no mastery). GRPO
then trains on the "normal" images (answer A) and is scored on held-out "normal" images: a task the policy can
master by moving probability onto the letter it already samples, so a CPU-sized run shows the effect in a dozen
steps (learning a new visual distinction by RL takes far more rollouts than a test can afford: the tiny profile's
organamnist runs show that). The model directory carries Qwen2.5-VL's shipped generation_config.json (top_k 1,
top_p 0.001, temperature 0.1, repetition_penalty 1.05), the trap a rollout must not fall into. The same GRPO-CARE run
goes twice from it, identical but for the sign of the accuracy reward.

Why noise cannot explain the margins:
- training reward: the mean accuracy over the last steps' rollouts exceeds the first steps' by more than 3 standard
  errors of that difference (Bernoulli rollouts; a no-learning policy gives a difference of 0 +- 1 SE);
- held-out Acc@1 (greedy, so deterministic given the weights) rises by at least MIN_GAIN items net, and the items
  it gains outnumber those it loses with a one-sided sign-test p < 0.01 (a weight change unrelated to the task
  flips items both ways in equal proportion);
- the inverted run, which sees the same data, seeds and steps, must not gain on either measure.
It fails if the reward's sign is flipped (the run learns the wrong way), if the group advantages are all zero (no
step changes the policy: no gain), or if the CARE bonus is never paid though accurate rollouts earn it.
"""

from __future__ import annotations

import copy
import json
import math

import pandas as pd
import pytest

QWEN_GENERATION_CONFIG = {"do_sample": True, "top_k": 1, "top_p": 0.001, "temperature": 0.1, "repetition_penalty": 1.05}
STEPS = 12
MIN_GAIN = 4  # held-out items (of 16), net


@pytest.fixture(scope="module")
def setup(tiny_cfg, tiny_model_dir, synthetic_dir, tmp_path_factory):
    from medbridge.data.mcq import make_items
    from medbridge.data.medmnist import npz_name
    from medbridge.io import write_jsonl
    from medbridge.train.sft import train_sft

    root = tmp_path_factory.mktemp("learning")
    npz = synthetic_dir / npz_name("pneumoniamnist", 64)
    train, held_out = root / "train.jsonl", root / "held_out.jsonl"
    both = make_items("pneumoniamnist", npz, "train", 20, seed=0)
    write_jsonl(train, both)
    normal = [it for it in make_items("pneumoniamnist", npz, "test", 16, seed=0) if it["answer"] == "A"]
    write_jsonl(held_out, normal)
    cfg = copy.deepcopy(tiny_cfg)
    cfg["models"] = {"base": {"source": "local", "path": str(tiny_model_dir)}}
    cfg["train"]["sft"].update(max_steps=60, save_steps=None, batch_size=4, lr=5e-3, prompts=["rl"], warmup_ratio=0)
    sft = train_sft(cfg, "base", [str(train)], root / "sft")
    write_jsonl(train, [it for it in both if it["answer"] == "A"])  # GRPO trains on the "normal" images
    gen = json.loads((sft / "generation_config.json").read_text())
    (sft / "generation_config.json").write_text(json.dumps({**gen, **QWEN_GENERATION_CONFIG}))
    cfg["models"]["sft"] = {"source": "local", "path": str(sft)}
    cfg["evaluate"].update(prompt="rl", n_samples=0, batch_size=32)
    # SGD, as the tiny profile: Adam's first steps move every touched weight by +-lr whatever its gradient, and on a
    # model this small the rollouts' noise then outweighs the reward's signal (no learning at lr 1e-3, collapse above)
    cfg["train"]["grpo"].update(
        max_steps=STEPS,
        save_steps=None,
        batch_size=32,
        num_generations=8,
        optim="sgd",
        lr=0.2,
        max_completion_length=24,
        temperature=1.0,
        top_p=1.0,
        care={**cfg["train"]["grpo"]["care"], "enabled": True},
    )
    return cfg, root, train, held_out


def greedy_correct(cfg: dict, model_dir, items_path) -> list[bool]:
    from medbridge.generate import SamplingSettings
    from medbridge.generate.hf import HFBackend
    from medbridge.io import read_jsonl
    from medbridge.score.extract import extract_choice

    items = read_jsonl(items_path)
    from transformers import GenerationConfig

    c = {**cfg, "models": {**cfg["models"], "m": {"source": "local", "path": str(model_dir)}}}
    backend = HFBackend(c, "m")
    shipped = backend.model.generation_config  # plain greedy decoding: none of the shipped sampling defaults
    backend.model.generation_config = GenerationConfig(
        eos_token_id=shipped.eos_token_id, pad_token_id=shipped.pad_token_id
    )
    out = backend.generate(items, SamplingSettings.from_config(c, 0), cfg["seed"], progress=False)
    return [extract_choice(o.greedy, list(it["options"]))[0] == it["answer"] for it, o in zip(items, out)]


def run_grpo(setup, name: str, monkeypatch, sign: float = 1.0):
    """GRPO-CARE from the SFT model, the accuracy reward multiplied by `sign`; (training log, the generation configs
    the rollouts were sampled with, the final model directory)."""
    from transformers.generation.utils import GenerationMixin

    from medbridge.train import grpo
    from medbridge.train.common import save_model_dir, training_log
    from medbridge.train.rewards import accuracy_reward

    cfg, root, train, _ = setup
    seen = []
    prepare = GenerationMixin._prepare_generation_config

    def spy(self, generation_config, *args, **kwargs):
        out = prepare(self, generation_config, *args, **kwargs)
        seen.append(out[0])
        return out

    monkeypatch.setattr(GenerationMixin, "_prepare_generation_config", spy)

    def signed_accuracy(completions, answer, **kwargs):
        return [sign * r for r in accuracy_reward(completions, answer, **kwargs)]

    signed_accuracy.__name__ = "accuracy_reward"
    monkeypatch.setattr(grpo, "accuracy_reward", signed_accuracy)
    trainer, processor = grpo.build_trainer(cfg, "sft", [str(train)], root / f"{name}.work")
    trainer.train()
    out = save_model_dir(trainer, processor, root / name, training_log(trainer))
    return pd.read_csv(out / "training_log.csv"), seen, out


def reward_gain(log: pd.DataFrame, rollouts_per_step: int, k: int = 4) -> tuple[float, float]:
    """(mean accuracy of the last k steps' rollouts - the first k steps', its standard error)."""
    acc = log["rewards/accuracy_reward/mean"].abs()  # the inverted run logs -acc
    first, last = acc.iloc[:k].mean(), acc.iloc[-k:].mean()
    n = k * rollouts_per_step
    se = math.sqrt(first * (1 - first) / n + last * (1 - last) / n)
    return last - first, se


def sign_test_p(gained: int, lost: int) -> float:
    """One-sided sign test: P(at least `gained` of the changed items are gains | gains and losses equally likely)."""
    n = gained + lost
    return sum(math.comb(n, i) for i in range(gained, n + 1)) / 2**n if n else 1.0


def test_grpo_care_learns_and_the_inverted_reward_does_not(setup, monkeypatch):
    cfg, root, _, held_out = setup
    per_step = cfg["train"]["grpo"]["batch_size"]
    before = greedy_correct(cfg, root / "sft", held_out)
    assert sum(before) / len(before) < 0.5, "the SFT model must leave room to improve"

    log, seen, model = run_grpo(setup, "grpo", monkeypatch)
    # rollouts sampled with the run's settings, not the checkpoint's generation_config (top_k 1 would make every
    # rollout of a group the same: zero advantages)
    assert seen and all(
        (g.do_sample, g.top_k, g.top_p, g.temperature, g.repetition_penalty) == (True, 50, 1.0, 1.0, 1.0) for g in seen
    )
    # the CARE bonus is paid: 0.5 x acc for accurate rollouts confident under the EMA reference, never otherwise
    # (what TRL summed into the reward, not only what CARE decided: paid = 0.5 x the rate of bonus rollouts)
    assert (log["rewards/care_bonus/mean"] > 0).mean() > 0.5
    assert log["rewards/care_bonus/mean"].to_numpy() == pytest.approx(0.5 * log["care/bonus_rate"].to_numpy())
    assert (log["rewards/care_bonus/mean"] <= 0.5 * log["rewards/accuracy_reward/mean"] + 1e-6).all()
    gain, se = reward_gain(log, per_step)
    assert gain > 3 * se, f"training accuracy moved by {gain:+.3f} (SE {se:.3f}): not learning"
    after = greedy_correct(cfg, model, held_out)
    gained = sum(a and not b for a, b in zip(after, before))
    lost = sum(b and not a for a, b in zip(after, before))
    assert gained - lost >= MIN_GAIN and sign_test_p(gained, lost) < 0.01, (
        f"held-out Acc@1 {sum(before)}/{len(before)} -> {sum(after)}/{len(after)} (+{gained} -{lost})"
    )
    assert log["frac_reward_zero_std"].iloc[:4].max() < 1  # the first steps' groups disagree: advantages not all 0
    print(f"training accuracy {gain:+.3f} (SE {se:.3f}); held-out Acc@1 {sum(before)} -> {sum(after)} of {len(after)}")

    inv_log, _, inv_model = run_grpo(setup, "inverted", monkeypatch, sign=-1.0)
    inv_gain, inv_se = reward_gain(inv_log, per_step)
    assert inv_gain < se, f"the inverted reward raised training accuracy by {inv_gain:+.3f}"
    inv_after = greedy_correct(cfg, inv_model, held_out)
    assert sum(inv_after) <= sum(before), "the inverted reward raised held-out Acc@1"
    print(f"inverted: training accuracy {inv_gain:+.3f}; held-out Acc@1 {sum(before)} -> {sum(inv_after)}")
