"""CARE's reward function by value (issue #25): two simulated ranks whose rollouts split one prompt's group each get
their own bonuses; the reference, kept in train mode with dropout, is scored in eval mode and left as it was."""

from __future__ import annotations

import copy
import threading
from types import SimpleNamespace

import pytest
import torch

from medbridge.train.care import CareBonus, CareSettings

ANSWER_B = ["B"]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval(), AutoProcessor.from_pretrained(
        tiny_model_dir
    )


def _prompt():
    from PIL import Image

    image = Image.new("RGB", (56, 56), (40, 160, 90))
    return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "A or B?"}]}]


def _ids(processor, texts):
    tok = processor.tokenizer
    return [tok(t, add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|im_end|>")] for t in texts]


class Ranks:
    """`n` simulated processes: accelerator.gather concatenates every rank's tensor in rank order, as on GPUs."""

    def __init__(self, n: int):
        self.n, self.barrier, self.slots, self.calls = n, threading.Barrier(n, timeout=120), {}, [0] * n

    def accelerator(self, rank: int):
        def gather(t):
            call = self.calls[rank]
            self.calls[rank] += 1
            self.slots[call, rank] = t
            self.barrier.wait()
            return torch.cat([self.slots[call, r] for r in range(self.n)])

        return SimpleNamespace(gather=gather, device="cpu", process_index=rank, num_processes=self.n)


def test_each_rank_gets_its_own_bonuses_when_a_group_straddles_ranks(tiny):
    """One prompt's 4 rollouts, 2 on each rank: rank 0 holds a wrong and a right answer, rank 1 two right ones. The
    group is decided on the gathered batch (mean acc 0.75: the right ones are accurate; margin 1: all confident);
    each rank returns the bonuses of its own rollouts."""
    model, processor = tiny
    texts = {0: ["<answer>A</answer>", "<answer>B</answer>"], 1: ["<answer>B</answer>", "<answer>B</answer>"]}
    ranks, out, logged, errors = Ranks(2), {}, {0: {}, 1: {}}, []

    def run(rank):
        try:
            bonus = CareBonus(CareSettings(conf_margin=1.0, bonus_weight=0.5), num_generations=4)
            trainer = SimpleNamespace(processing_class=processor, accelerator=ranks.accelerator(rank))
            bonus.bind(trainer, copy.deepcopy(model))
            out[rank] = bonus(
                prompts=[_prompt()] * 2,
                completions=texts[rank],
                completion_ids=_ids(processor, texts[rank]),
                answer=ANSWER_B * 2,
                log_metric=lambda k, v: logged[rank].__setitem__(k, v),
            )
        except Exception as e:  # noqa: BLE001  (re-raised in the main thread)
            errors.append(e)
            ranks.barrier.abort()

    threads = [threading.Thread(target=run, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    if errors:
        raise errors[0]
    assert out == {0: [0.0, 0.5], 1: [0.5, 0.5]}
    # the logged rates are of the whole gathered batch, the same on both ranks
    assert logged[0]["care/bonus_rate"] == logged[1]["care/bonus_rate"] == 0.75


class DropoutReference(torch.nn.Module):
    """The tiny model with dropout on its logits, recording the mode of every forward it is asked for."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.drop, self.modes = inner, torch.nn.Dropout(0.5), []
        self.config = inner.config

    @property
    def device(self):
        return self.inner.device

    def forward(self, *args, **kwargs):
        self.modes.append(self.training)
        out = self.inner(*args, **kwargs)
        out.logits = self.drop(out.logits)
        return out


def test_the_reference_is_scored_in_eval_mode_and_left_in_its_mode(tiny):
    model, processor = tiny
    texts = ["<think>x</think><answer>B</answer>", "<think>yy</think><answer>B</answer>"]

    def confidence(ref) -> float:
        logged = {}
        trainer = SimpleNamespace(
            processing_class=processor,
            accelerator=SimpleNamespace(gather=lambda t: t, device="cpu", process_index=0, num_processes=1),
        )
        bonus = CareBonus(CareSettings(conf_clamp=1.0, span="content"), num_generations=2)
        bonus.bind(trainer, ref)
        bonus(
            prompts=[_prompt()] * 2,
            completions=texts,
            completion_ids=_ids(processor, texts),
            answer=ANSWER_B * 2,
            log_metric=lambda k, v: logged.__setitem__(k, v),
        )
        return logged["care/ref_conf_accurate"]  # mean p of the accurate rollouts: both here

    torch.manual_seed(0)
    in_eval = DropoutReference(copy.deepcopy(model)).eval()
    expected = confidence(in_eval)
    assert in_eval.modes and not any(in_eval.modes) and not in_eval.training
    assert 0 < expected < 1
    in_train = DropoutReference(copy.deepcopy(model)).train()
    # dropout is live in train mode: the same forward twice differs, so a reference scored in train mode would too
    ids = torch.tensor(_ids(processor, texts[:1]))
    assert not torch.equal(in_train(input_ids=ids).logits, in_train(input_ids=ids).logits)
    in_train.modes.clear()
    assert confidence(in_train) == pytest.approx(expected, rel=1e-6)
    assert in_train.modes and not any(in_train.modes)  # every scoring forward ran in eval mode
    assert in_train.training and in_train.inner.training  # and the reference is handed back in train mode


def test_the_defaults_are_the_authors_settings_as_the_paper_config_records_them():
    import yaml

    from .conftest import ROOT

    care = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())["train"]["grpo"]["care"]
    assert set(care) == set(CareSettings.__dataclass_fields__)  # every setting is stated there
    assert CareSettings() == CareSettings.from_config(care)


def test_the_end_token_is_not_answer_text(tiny):
    """span content without tags reads the whole completion's text; the end-of-sequence token is no text, so a
    completion's p is the same with or without it (the logits before it do not depend on it)."""
    from medbridge.train.care import answer_confidence

    model, processor = tiny
    with_end = _ids(processor, ["B is my answer"])
    without = [with_end[0][:-1]]
    p = [
        answer_confidence(model, processor, [_prompt()], ids, clamp=1.0, span="content").item()
        for ids in (with_end, without)
    ]
    assert 0 < p[0] < 1 and p[0] == pytest.approx(p[1], rel=1e-5)


def test_authors_span_edges():
    """The last "<answer>" counts even as the completion's last token (then the span is empty), and a span never
    reaches past eos - 3 (the closing tag's tokens), so a tag within 3 tokens of eos leaves it empty too."""
    from medbridge.train.care import authors_token_mask

    truncated = ["<answer>", "A", "B", "</answer>", "x", "y", "<answer>"]
    assert authors_token_mask(truncated, list(range(7)), [99]) == [False] * 7
    short = ["<answer>", "A", "</answer>"]
    assert authors_token_mask(short + [""], [0, 1, 2, 99], [99]) == [False] * 4


def test_no_rollouts_give_no_confidences(tiny):
    from medbridge.train.care import answer_confidence

    model, processor = tiny
    assert answer_confidence(model, processor, [], [], clamp=0.95).shape == (0,)
