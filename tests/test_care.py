"""The CARE consistency bonus: who is accurate, who is confident, the bonus; the answer span; the EMA update."""

import copy
import math
import sys
from types import SimpleNamespace

import pytest
import torch

from medbridge.train.care import (
    CareBonus,
    CareSettings,
    EmaReferenceCallback,
    answer_confidence,
    answer_token_mask,
    authors_token_mask,
    care_bonus,
    ema_update,
    span_mean_logprob,
)

S = CareSettings(conf_margin=0.01, bonus_weight=0.5, conf_clamp=0.95)


def test_bonus_on_hand_computed_groups():
    acc = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    p = torch.tensor([0.90, 0.50, 0.95, 0.60, 0.9, 0.9, 0.9, 0.9, 0.95, 0.95, 0.30, 0.80])
    d = care_bonus(acc, p, num_generations=4, s=S)
    # group 1: mean acc 0.75 -> accurate {0, 1, 3}; mean p over them 2.0/3 = 0.6667 -> confident p >= 0.6567
    # group 2: nobody accurate -> no bonus (and no reference mean)
    # group 3: mean acc 1 -> all accurate; mean p 0.75 -> confident p >= 0.74
    assert d.accurate.tolist() == [True, True, False, True] + [False] * 4 + [True] * 4
    assert d.confident[:4].tolist() == [True, False, True, False]  # the wrong rollout is confident, but not accurate
    assert d.confident[4:8].tolist() == [False] * 4
    assert d.confident[8:].tolist() == [True, True, False, True]
    assert d.bonus.tolist() == pytest.approx([0.5, 0, 0, 0, 0, 0, 0, 0, 0.5, 0.5, 0, 0.5])
    assert d.ref_mean[0].item() == pytest.approx(2.0 / 3) and math.isnan(d.ref_mean[1].item())


def test_statistics_are_per_group_not_per_batch():
    # The same rollout (acc 1, p 0.5) sits once in a group of strong peers and once among weak ones.
    acc = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    p = torch.tensor([0.5, 0.9, 0.1, 0.1, 0.5, 0.9, 0.9, 0.9])
    d = care_bonus(acc, p, num_generations=4, s=S)
    assert d.bonus.tolist() == pytest.approx([0, 0.5, 0, 0, 0.5, 0, 0, 0])
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


EOS = 99


def _ids(pieces):  # token ids for hand-built pieces: "" stands for the end-of-sequence token
    return [EOS if p == "" else i for i, p in enumerate(pieces)]


def test_authors_span_from_the_tag_end_to_eos_minus_3_on_a_hand_built_sequence():
    # Qwen's tokenizer splits the tags as "<", "answer", ">"; GRPO-CARE's get_thinking_answer_masks finds the
    # "answer" token of the last "<answer>" and masks (that index, eos - 3): the ">" and the answer content
    pieces = ["<", "think", ">x", "</", "think", "><", "answer", ">", "B", "</", "answer", ">", ""]
    assert [i for i, m in enumerate(authors_token_mask(pieces, _ids(pieces), [EOS])) if m] == [7, 8]  # ">", "B"
    assert [i for i, m in enumerate(answer_token_mask(pieces)) if m] == [8]  # care.span: content, the letter only
    # whitespace inside the tag belongs to both spans' ends as the authors count them
    spaced = ["<", "answer", ">", " ", "A", " </", "answer", ">", ""]
    assert [i for i, m in enumerate(authors_token_mask(spaced, _ids(spaced), [EOS])) if m] == [2, 3, 4]
    # a token after the closing tag shifts eos - 3 by one: the "</" is then inside the authors' span
    trailing = ["<", "answer", ">", "B", "</", "answer", ">", "\n", ""]
    assert [i for i, m in enumerate(authors_token_mask(trailing, _ids(trailing), [EOS])) if m] == [2, 3, 4]
    # two answers: the last "<answer>"; truncated (no eos): eos is the completion's end
    two = ["<", "answer", ">", "A", "</", "answer", ">", "<", "answer", ">", "C", "</", "answer", ">"]
    assert [i for i, m in enumerate(authors_token_mask(two, _ids(two), [EOS])) if m] == [9, 10]
    # no "<answer>" in the completion (a "</answer>" alone does not count): no span
    none = ["B", "</", "answer", ">", ""]
    assert not any(authors_token_mask(none, _ids(none), [EOS]))
    # the default of the training config is the authors' span
    assert CareSettings().span == "authors" and CareSettings.from_config({"span": "content"}).span == "content"
    with pytest.raises(ValueError, match="span"):
        CareSettings.from_config({"span": "letters"})


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


def _prompt(image):
    return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "Which? A or B"}]}]


def test_answer_confidence_is_the_reference_likelihood_of_the_answer_tokens(tiny):
    from PIL import Image

    model, processor = tiny
    image = Image.new("RGB", (56, 56), (120, 30, 200))
    texts = ["<think>x</think><answer>B</answer>", "<think>a longer thought</think><answer>A</answer>"]
    comp = _rollouts(processor, texts)
    p = answer_confidence(model, processor, [_prompt(image)] * 2, comp, clamp=0.95, span="content")
    p_authors = answer_confidence(model, processor, [_prompt(image)] * 2, comp, clamp=1.0)
    # by hand, one rollout at a time: the letter's probability under the model (the only answer-span token)
    for j, ids in enumerate(comp):
        chat = processor.apply_chat_template(_prompt(image), add_generation_prompt=True, tokenize=False)
        enc = processor(text=[chat], images=[[image]], return_tensors="pt")
        full = torch.cat([enc["input_ids"], torch.tensor([ids])], 1)
        mm = torch.cat([enc["mm_token_type_ids"], torch.zeros(1, len(ids), dtype=torch.long)], 1)
        with torch.no_grad():
            logits = model(
                input_ids=full,
                attention_mask=torch.ones_like(full),
                pixel_values=enc["pixel_values"],
                image_grid_thw=enc["image_grid_thw"],
                mm_token_type_ids=mm,
            ).logits[0]
        logps = logits[enc["input_ids"].shape[1] - 1 : -1].log_softmax(-1).gather(-1, torch.tensor(ids)[:, None])[:, 0]
        pieces = [processor.tokenizer.decode([t], skip_special_tokens=True) for t in ids]
        span = torch.tensor(answer_token_mask(pieces), dtype=torch.bool)
        assert span.sum() >= 1
        assert p[j].item() == pytest.approx(min(0.95, logps[span].mean().exp().item()), rel=1e-4)
        # the authors' span: the tag's ">" and the letter, a mean over both tokens (here unclamped)
        eos = processor.tokenizer.eos_token_id
        theirs = torch.tensor(authors_token_mask(pieces, ids, [eos]), dtype=torch.bool)
        assert "".join(pc for pc, m in zip(pieces, theirs) if m) == ">" + texts[j][-10]
        assert p_authors[j].item() == pytest.approx(logps[theirs].mean().exp().item(), rel=1e-4)
    empty = _rollouts(processor, ["<answer></answer>"])
    assert answer_confidence(
        model, processor, [_prompt(image)], empty, clamp=0.95, span="content"
    ).item() == pytest.approx(0.95)
    # the authors' span of an empty answer still holds the tag's ">": p is that token's probability
    assert answer_confidence(model, processor, [_prompt(image)], empty, clamp=1.0).item() < 0.95


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
    out = bonus(
        prompts=[_prompt(Image.new("RGB", (56, 56)))] * 4,
        completions=texts,
        completion_ids=_rollouts(processor, texts),
        answer=["B", "B", "A", "C"],
        log_metric=lambda k, v: logged.__setitem__(k, v),
    )
    assert out == [0.5, 0.0, 0.0, 0.0]  # group 2 has no accurate rollout
    assert logged["care/bonus_rate"] == 0.25 and bonus.__name__ == "care_bonus"
    assert not model.training


def test_one_reference_forward_for_all_rollouts_equals_one_per_rollout(tiny):
    """Rollouts of different prompt lengths (image sizes, a text-only prompt) and completion lengths, in one padded
    forward, give each rollout the p it gets alone (the former one-forward-per-rollout computation)."""
    from PIL import Image

    model, processor = tiny
    text_only = [{"role": "user", "content": [{"type": "text", "text": "Which? A or B, and why"}]}]
    prompts = [
        _prompt(Image.new("RGB", (56, 56), (120, 30, 200))),
        _prompt(Image.new("RGB", (112, 84), (9, 200, 40))),
        text_only,
        _prompt(Image.new("RGB", (84, 56), (200, 200, 0))),
    ]
    texts = [
        "<think>x</think><answer>B</answer>",
        "<think>a much longer thought here</think><answer>A</answer>",
        "<answer></answer>",
        "<think>no answer tag at all",
    ]
    comp = _rollouts(processor, texts)
    calls = []
    hook = model.register_forward_hook(lambda *a: calls.append(1))
    try:
        for span in ("authors", "content"):
            calls.clear()
            together = answer_confidence(model, processor, prompts, comp, clamp=1.0, span=span)
            assert len(calls) == 1  # one forward (one ZeRO-3 gather of the reference) for the 4 rollouts
            alone = torch.cat(
                [answer_confidence(model, processor, [p], [c], clamp=1.0, span=span) for p, c in zip(prompts, comp)]
            )
            assert together.shape == (4,) and len(calls) == 5
            assert torch.allclose(together, alone, rtol=1e-5, atol=1e-6), (span, together, alone)
            # no <answer> tag: the authors' span is empty (mean log-prob 0); `content` reads the whole completion
            assert (together[3] == 1.0) == (span == "authors")
            assert 0 < together[0] < 1 and 0 < together[1] < 1
    finally:
        hook.remove()
    assert answer_confidence(model, processor, [], [], clamp=0.95).numel() == 0


def _pair():
    torch.manual_seed(0)
    policy, ref = (
        torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2)) for _ in range(2)
    )
    with torch.no_grad():  # LayerNorm starts at ones and zeros in both: make every pair differ
        for p in policy.parameters():
            p.add_(torch.randn_like(p))
    return policy, ref


def test_ema_update_equals_trls_formula():
    """ema_update is TRL's SyncRefModelCallback update with alpha = 1 - decay, bit for bit, and the authors' lerp."""
    from trl.trainer.callbacks import SyncRefModelCallback

    policy, ref = _pair()
    theirs = copy.deepcopy(ref)
    ref0 = [p.detach().clone() for p in ref.parameters()]
    ema_update(policy, ref, 0.9)
    SyncRefModelCallback._sync_target_model(policy, theirs, 1 - 0.9)
    for mine, trl, r0, w in zip(ref.parameters(), theirs.parameters(), ref0, policy.parameters()):
        assert torch.equal(mine, trl)
        assert torch.allclose(mine, torch.lerp(w.detach(), r0, 0.9))  # the authors' form
        assert not torch.equal(mine, r0)


def test_ema_callback_moves_the_reference_every_n_steps():
    policy, ref = _pair()
    ref0 = [p.detach().clone() for p in ref.parameters()]
    cb = EmaReferenceCallback(ref, None, CareSettings(ema="ema", ema_decay=0.5, ema_every=10))
    cb.on_step_end(None, SimpleNamespace(global_step=7), None, model=policy)  # not a multiple of 10: unchanged
    assert all(torch.equal(a, b) for a, b in zip(ref.parameters(), ref0))
    cb.on_step_end(None, SimpleNamespace(global_step=10), None, model=policy)
    for r, r0, w in zip(ref.parameters(), ref0, policy.parameters()):
        assert torch.allclose(r, 0.5 * r0 + 0.5 * w.detach())


def test_ema_under_zero3_gathers_one_pair_at_a_time_and_keeps_rank_0s_update(monkeypatch):
    """Under ZeRO-3 (parameters carrying ds_id) each gather holds one parameter: the policy's without a broadcast
    back, the reference's with modifier_rank 0 so DeepSpeed broadcasts the update instead of discarding it; only rank
    0 computes it. DeepSpeed's own GatheredParameters runs in the opt-in tests/test_zero3.py; here a stand-in records
    how it is called."""
    gathers = []

    class Gathered:
        def __init__(self, params, modifier_rank=None):
            gathers.append((len(params), modifier_rank))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    for rank, moves in ((0, True), (1, False)):
        fake = SimpleNamespace(
            zero=SimpleNamespace(GatheredParameters=Gathered), comm=SimpleNamespace(get_rank=lambda rank=rank: rank)
        )
        monkeypatch.setitem(sys.modules, "deepspeed", fake)
        policy, ref = _pair()
        for i, p in enumerate([*policy.parameters(), *ref.parameters()]):
            p.ds_id = i
        ref0 = [p.detach().clone() for p in ref.parameters()]
        gathers.clear()
        ema_update(policy, ref, 0.5)
        assert gathers == [(1, None), (1, 0)] * len(ref0)
        assert all(torch.equal(r, r0) != moves for r, r0 in zip(ref.parameters(), ref0))
        if moves:  # rank 0's update is TRL's formula, as without ZeRO-3
            pairs = zip(ref.parameters(), ref0, policy.parameters(), strict=True)
            assert all(torch.allclose(r, 0.5 * r0 + 0.5 * p) for r, r0, p in pairs)


def test_the_reference_is_frozen_by_default_and_ema_is_a_choice():
    assert CareSettings().ema == "frozen" == CareSettings.from_config({"enabled": True}).ema
    assert CareSettings.from_config({"ema": "ema"}).ema == "ema"
    with pytest.raises(ValueError, match="ema"):
        CareSettings.from_config({"ema": "lerp"})
