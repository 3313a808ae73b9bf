"""The CARE consistency bonus: who is accurate, who is confident, the bonus; the answer span; the EMA update."""

import math
from types import SimpleNamespace

import pytest
import torch

from medbridge.train.care import (
    CareBonus,
    CareSettings,
    answer_confidence,
    answer_token_mask,
    care_bonus,
    span_mean_logprob,
)

S = CareSettings(conf_margin=0.01, bonus_weight=0.5, conf_clamp=0.95)


def test_bonus_on_hand_computed_groups():
    acc = torch.tensor([1.0, 1.0, 0.0, 1.0,   0.0, 0.0, 0.0, 0.0,   1.0, 1.0, 1.0, 1.0])  # fmt: skip
    p = torch.tensor([0.90, 0.50, 0.95, 0.60,   0.9, 0.9, 0.9, 0.9,   0.95, 0.95, 0.30, 0.80])  # fmt: skip
    d = care_bonus(acc, p, num_generations=4, s=S)
    # group 1: mean acc 0.75 -> accurate {0, 1, 3}; mean p over them 2.0/3 = 0.6667 -> confident p >= 0.6567
    # group 2: nobody accurate -> no bonus (and no reference mean)
    # group 3: mean acc 1 -> all accurate; mean p 0.75 -> confident p >= 0.74
    assert d.accurate.tolist() == [True, True, False, True] + [False] * 4 + [True] * 4
    assert d.confident[:4].tolist() == [True, False, True, False]  # the wrong rollout is confident, but not accurate
    assert d.confident[4:8].tolist() == [False] * 4
    assert d.confident[8:].tolist() == [True, True, False, True]
    assert d.bonus.tolist() == pytest.approx([0.5, 0, 0, 0,   0, 0, 0, 0,   0.5, 0.5, 0, 0.5])  # fmt: skip
    assert d.ref_mean[0].item() == pytest.approx(2.0 / 3) and math.isnan(d.ref_mean[1].item())


def test_statistics_are_per_group_not_per_batch():
    # The same rollout (acc 1, p 0.5) sits once in a group of strong peers and once among weak ones.
    acc = torch.tensor([1.0, 1.0, 0.0, 0.0,   1.0, 0.0, 0.0, 0.0])  # fmt: skip
    p = torch.tensor([0.5, 0.9, 0.1, 0.1,   0.5, 0.9, 0.9, 0.9])  # fmt: skip
    d = care_bonus(acc, p, num_generations=4, s=S)
    assert d.bonus.tolist() == pytest.approx([0, 0.5, 0, 0,   0.5, 0, 0, 0])  # fmt: skip
    # Pooled over all 8, the group-2 rollout would face mean p 0.633 and lose its bonus.
    pooled = care_bonus(acc, p, num_generations=8, s=S)
    assert pooled.bonus[4].item() == 0.0


def test_margin_and_weight_and_partial_accuracy():
    acc = torch.tensor([0.6, 0.6, 0.05, 0.0])
    p = torch.tensor([0.80, 0.795, 0.99, 0.1])
    # accurate needs acc > 0.1 and acc >= mean (0.3125): rollouts 0, 1; mean p 0.7975; margin 0.01 keeps both
    d = care_bonus(acc, p, 4, CareSettings(conf_margin=0.01, bonus_weight=2.0))
    assert d.bonus.tolist() == pytest.approx([1.2, 1.2, 0, 0])
    d0 = care_bonus(acc, p, 4, CareSettings(conf_margin=0.0, bonus_weight=2.0))
    assert d0.bonus.tolist() == pytest.approx([1.2, 0, 0, 0])
    with pytest.raises(ValueError):
        care_bonus(acc[:3], p[:3], 4, S)


def test_answer_token_mask_covers_the_answer_content_only():
    pieces = ["<", "think", ">x", "</", "think", "><", "answer", ">", "B", "</", "answer", ">", ""]
    assert [i for i, m in enumerate(answer_token_mask(pieces)) if m] == [8]
    straddle = ["<answer", ">B", "</answer>"]  # a token holding the tag's end and the letter counts
    assert answer_token_mask(straddle) == [False, True, False]
    assert answer_token_mask(["A", "", "."]) == [True, False, True]  # no tags: the whole text, not special tokens
    assert answer_token_mask(["<answer>", "</answer>"]) == [False, False]  # empty answer: empty span


def test_empty_span_means_logprob_zero_so_p_one_before_the_clamp():
    logps = torch.tensor([[-1.0, -3.0, -5.0], [-1.0, -3.0, -5.0]])
    mask = torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    out = span_mean_logprob(logps, mask)
    assert out[0].item() == pytest.approx(-4.0, abs=1e-4) and out[1].item() == 0.0


def _rollouts(processor, texts):
    tok = processor.tokenizer
    return [tok(t, add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|im_end|>")] for t in texts]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()
    return model, AutoProcessor.from_pretrained(tiny_model_dir)


def _prompt(image, text="Which? A or B"):
    return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": text}]}]


def test_answer_confidence_is_the_reference_likelihood_of_the_answer_tokens(tiny):
    from PIL import Image

    model, processor = tiny
    image = Image.new("RGB", (56, 56), (120, 30, 200))
    texts = ["<think>x</think><answer>B</answer>", "<think>a longer thought</think><answer>A</answer>"]
    comp = _rollouts(processor, texts)
    # prompts of different lengths and completions of different lengths: one padded batch must give what each
    # rollout gives alone
    prompts = [_prompt(image), _prompt(Image.new("RGB", (56, 56)), "Which of the options is it? A or B or C")]
    p = answer_confidence(model, processor, prompts, comp, clamp=0.95)
    # by hand, one rollout at a time: the letter's probability under the model (the only answer-span token)
    for j, ids in enumerate(comp):
        chat = processor.apply_chat_template(prompts[j], add_generation_prompt=True, tokenize=False)
        enc = processor(text=[chat], images=[[prompts[j][0]["content"][0]["image"]]], return_tensors="pt")
        full = torch.cat([enc["input_ids"], torch.tensor([ids])], 1)
        mm = torch.cat([enc["mm_token_type_ids"], torch.zeros(1, len(ids), dtype=torch.long)], 1)
        with torch.no_grad():
            logits = model(input_ids=full, attention_mask=torch.ones_like(full), pixel_values=enc["pixel_values"],
                           image_grid_thw=enc["image_grid_thw"], mm_token_type_ids=mm).logits[0]
        logps = logits[enc["input_ids"].shape[1] - 1 : -1].log_softmax(-1).gather(-1, torch.tensor(ids)[:, None])[:, 0]
        pieces = [processor.tokenizer.decode([t], skip_special_tokens=True) for t in ids]
        span = torch.tensor(answer_token_mask(pieces), dtype=torch.bool)
        assert span.sum() >= 1
        assert p[j].item() == pytest.approx(min(0.95, logps[span].mean().exp().item()), rel=1e-4)
    assert answer_confidence(model, processor, [_prompt(image)], _rollouts(processor, ["<answer></answer>"]),
                             clamp=0.95).item() == pytest.approx(0.95)  # fmt: skip


def test_care_reward_function_gives_the_bonus_of_its_group(tiny):
    from PIL import Image

    model, processor = tiny
    fake_trainer = SimpleNamespace(
        processing_class=processor,
        accelerator=SimpleNamespace(gather=lambda t: t, device="cpu", process_index=0),
    )
    bonus = CareBonus(CareSettings(conf_margin=1.0), num_generations=2)  # margin 1: every accurate one is confident
    bonus.bind(fake_trainer, model)
    texts = ["<think>x</think><answer>B</answer>", "<think>x</think><answer>A</answer>"] * 2
    logged = {}
    out = bonus(prompts=[_prompt(Image.new("RGB", (56, 56)))] * 4, completions=texts,
                completion_ids=_rollouts(processor, texts), answer=["B", "B", "A", "C"],
                log_metric=lambda k, v: logged.__setitem__(k, v))  # fmt: skip
    assert out == [0.5, 0.0, 0.0, 0.0]  # group 2 has no accurate rollout
    assert logged["care/bonus_rate"] == 0.25 and bonus.__name__ == "care_bonus"
    assert not model.training


def test_ema_update_is_lerp_toward_the_policy_every_n_steps():
    """The reference update TRL's SyncRefModelCallback performs with alpha = 1 - ema_decay (what grpo.py wires)."""
    from accelerate import Accelerator
    from trl.trainer.callbacks import SyncRefModelCallback

    Accelerator(cpu=True)  # the callback asks the accelerate state whether DeepSpeed ZeRO-3 is on
    policy, ref = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    ref0 = [p.detach().clone() for p in ref.parameters()]
    decay, every = 0.9, 10
    cb = SyncRefModelCallback(ref_model=ref, accelerator=None)
    args = SimpleNamespace(ref_model_sync_steps=every, ref_model_mixup_alpha=1 - decay)
    cb.on_step_end(args, SimpleNamespace(global_step=7), None, model=policy)  # not a multiple of 10: unchanged
    assert all(torch.equal(a, b) for a, b in zip(ref.parameters(), ref0))
    cb.on_step_end(args, SimpleNamespace(global_step=10), None, model=policy)
    for r, r0, w in zip(ref.parameters(), ref0, policy.parameters()):
        assert torch.allclose(r, decay * r0 + (1 - decay) * w.detach())
        assert torch.allclose(r, torch.lerp(w.detach(), r0, decay))  # the authors' form
