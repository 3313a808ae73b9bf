"""GRPO-CARE's consistency bonus, as the authors run it, on TRL's GRPOTrainer.

For every rollout, p = exp(mean log-prob of its answer-span tokens) under an EMA copy of the policy (the reference),
clamped at `conf_clamp`. Within each group (the `num_generations` rollouts of one prompt; the authors' trainer holds
one prompt's rollouts per device and computes these statistics per device, i.e. per group):
  accurate  = acc > 0.1 and acc >= mean acc of the group
  confident = p >= (mean p over the group's accurate rollouts) - conf_margin
  bonus     = bonus_weight * acc for rollouts both accurate and confident, else 0.
The bonus is added to the summed reward before the group-relative advantage. The reference starts as the initial
policy. With `ema: ema` it is updated every `ema_every` optimizer steps as ref = decay * ref + (1 - decay) * param
(torch.lerp(param, ref, decay); TRL's SyncRefModelCallback formula with alpha = 1 - decay), one parameter pair at a
time (`ema_update`). With `ema: frozen` (the default) it stays the initial policy, as it effectively did in the
authors' runs: their update ran inside ZeRO-3's GatheredParameters without modifier_rank, and DeepSpeed discards such
changes (docs/FIDELITY.md, row `care-ema`).

Answer span (`care.span`):
  authors  (default) GRPO-CARE's own mask (grpo_trainer_ref_ema.py, `get_thinking_answer_masks`): find the last
           token containing "answer" whose window (previous token, itself, next token) reads "<answer>"; the span
           runs from the token after it (the ">" of the tag, with Qwen's tokenizer) up to, not including, eos - 3
           (eos = the first end-of-sequence token, else the completion's end; the 3 tokens before it are the closing
           tag). The ">" is nearly certain under any model, so this p sits closer to 1 than the answer's own.
  content  the completion tokens overlapping the text the accuracy reward reads (the content of the last
           <answer>...</answer>, else the whole completion): the answer's own confidence.
An empty span gives mean log-prob 0 (p = 1 before the clamp), as the authors' masked mean does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import TrainerCallback

from medbridge.train.rewards import accuracy_reward, answer_span

SPANS = ("authors", "content")
EMA_MODES = ("frozen", "ema")
PER_TOKEN = ("token_type_ids", "mm_token_type_ids")  # processor outputs with one value per input token


@dataclass(frozen=True)
class CareSettings:
    enabled: bool = True
    span: str = "authors"
    ema: str = "frozen"
    ema_decay: float = 0.995
    ema_every: int = 10
    conf_clamp: float = 0.95
    conf_margin: float = 0.01
    bonus_weight: float = 0.5

    @classmethod
    def from_config(cls, care: dict) -> CareSettings:
        out = cls(**{k: care[k] for k in cls.__dataclass_fields__ if k in care})
        if out.span not in SPANS:
            raise ValueError(f"train.grpo.care.span {out.span!r} is not one of {SPANS}")
        if out.ema not in EMA_MODES:
            raise ValueError(f"train.grpo.care.ema {out.ema!r} is not one of {EMA_MODES}")
        return out


@dataclass
class CareDecision:
    bonus: torch.Tensor  # (N,) reward added to each rollout
    accurate: torch.Tensor  # (N,) bool
    confident: torch.Tensor  # (N,) bool
    ref_mean: torch.Tensor  # (N / G,) mean p over each group's accurate rollouts (NaN where none is accurate)


def care_bonus(acc: torch.Tensor, p: torch.Tensor, num_generations: int, s: CareSettings) -> CareDecision:
    """The bonus for rollouts laid out as consecutive groups of `num_generations` (TRL's layout); p already clamped."""
    if acc.numel() % num_generations:
        raise ValueError(f"{acc.numel()} rollouts do not form whole groups of {num_generations}")
    a = acc.float().view(-1, num_generations)
    q = p.float().view(-1, num_generations)
    accurate = (a > 0.1) & (a >= a.mean(dim=1, keepdim=True))
    n_acc = accurate.sum(dim=1, keepdim=True)
    ref_mean = torch.where(accurate, q, 0.0).sum(dim=1, keepdim=True) / n_acc  # NaN for a group with none accurate
    confident = q >= ref_mean - s.conf_margin  # False against NaN
    bonus = s.bonus_weight * a * (accurate & confident)
    return CareDecision(bonus.view(-1), accurate.view(-1), confident.view(-1), ref_mean.view(-1))


def answer_token_mask(pieces: list[str]) -> list[bool]:
    """Which completion tokens (given as their decoded texts) overlap the span the accuracy reward reads."""
    start, end = answer_span("".join(pieces))
    mask, pos = [], 0
    for piece in pieces:
        mask.append(len(piece) > 0 and pos < end and pos + len(piece) > start)
        pos += len(piece)
    return mask


def authors_token_mask(pieces: list[str], ids: list[int], eos_ids) -> list[bool]:
    """GRPO-CARE's answer span over completion tokens (given as decoded texts and ids); see the module docstring."""
    eos_ids = set(eos_ids)
    eos = next((j for j, t in enumerate(ids) if t in eos_ids), len(ids))
    tag = next(
        (
            i
            for i in range(len(pieces) - 1, -1, -1)
            if "answer" in pieces[i] and "<answer>" in "".join(pieces[max(i - 1, 0) : i + 2])
        ),
        None,
    )
    if tag is None:
        return [False] * len(pieces)
    end = max(tag + 1, eos - 3)
    return [tag < j < end for j in range(len(pieces))]


def span_token_mask(pieces: list[str], ids: list[int], eos_ids, span: str = "authors") -> list[bool]:
    if span == "authors":
        return authors_token_mask(pieces, ids, eos_ids)
    if span == "content":
        return answer_token_mask(pieces)
    raise ValueError(f"CARE span {span!r} is not one of {SPANS}")


def span_mean_logprob(token_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over each row, 0 for an empty mask (the authors' sum / (count + 1e-6))."""
    return (token_logps * mask).sum(dim=1) / (mask.sum(dim=1) + 1e-6)


def answer_confidence(
    model, processor, prompts: list, completion_ids: list[list[int]], clamp: float, span: str = "authors", eos_ids=None
) -> torch.Tensor:
    """p per rollout under `model` (the EMA reference): exp(mean log-prob of the answer-span tokens), clamped.
    `eos_ids`: the end-of-sequence ids generation stops at (default: the tokenizer's eos).

    `prompts` are TRL's conversational prompts with the images already placed in them, rendered and processed as
    GRPOTrainer renders them for generation. One forward for all the rollouts, whatever their number: under ZeRO-3
    every forward all-gathers the whole reference, so one per rollout gathered it 8 times per step. Each row is its
    prompt + completion, left-padded (padding masked; Qwen2.5-VL's rope positions skip it) so every completion ends
    at the last position; logits are kept from the earliest answer-span token of any row on (TRL's own policy forward
    over the same rollouts keeps every completion position, so this is no larger), and turned into log-probs one row
    at a time.
    """
    if not completion_ids:
        return torch.zeros(0)
    tok = processor.tokenizer
    eos_ids = list(eos_ids) if eos_ids else [tok.eos_token_id]
    device = next(model.parameters()).device
    rows, masks, firsts, extras = [], [], [], {}
    for prompt, ids in zip(prompts, completion_ids, strict=True):
        text = processor.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        images = [
            part["image"]
            for m in prompt
            if isinstance(m["content"], list)
            for part in m["content"]
            if part.get("type") == "image"
        ]
        enc = processor(text=[text], images=[images] if images else None, return_tensors="pt")
        pieces = [tok.decode([t], skip_special_tokens=True) for t in ids]
        mask = torch.tensor(span_token_mask(pieces, ids, eos_ids, span), dtype=torch.bool)
        masks.append(mask)
        firsts.append(int(mask.nonzero()[0]) if mask.any() else len(ids))  # no span: no logits needed, mean is 0
        comp = torch.tensor(ids, dtype=torch.long)
        rows.append(torch.cat([enc["input_ids"][0], comp]))
        for key, value in enc.items():
            if key in PER_TOKEN:  # completion tokens are text (0)
                value = torch.cat([value[0], torch.zeros_like(comp)])
            if key not in ("input_ids", "attention_mask"):
                extras.setdefault(key, []).append(value)
    width = max(len(r) for r in rows)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else eos_ids[0]
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        input_ids[i, width - len(r) :] = r
        attention[i, width - len(r) :] = 1
    inputs = {}
    for key, values in extras.items():
        if key in PER_TOKEN:
            padded = torch.zeros((len(rows), width), dtype=values[0].dtype)
            for i, v in enumerate(values):
                padded[i, width - len(v) :] = v
            inputs[key] = padded
        else:  # pixel_values, image_grid_thw: one block per image, in row order
            inputs[key] = torch.cat(values, dim=0)
    keep = max(len(ids) - first for ids, first in zip(completion_ids, firsts, strict=True)) + 1
    with torch.no_grad():
        logits = model(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            logits_to_keep=keep,
            **{k: v.to(device) for k, v in inputs.items()},
        ).logits
    out = []
    for i, (ids, first, mask) in enumerate(zip(completion_ids, firsts, masks, strict=True)):
        # logits[i, t] is position width - keep + t, which predicts completion token t - keep + n + 1 (n = len(ids))
        start = keep - len(ids) + first - 1
        target = torch.tensor(ids[first:], dtype=torch.long, device=logits.device)
        logps = logits[i, start : keep - 1].float().log_softmax(-1).gather(-1, target[:, None])[:, 0].cpu()
        out.append(span_mean_logprob(logps[None], mask[first:][None].float()).exp())
    return torch.cat(out).clamp(max=clamp)


def ema_update(policy, ref, decay: float) -> None:
    """ref <- decay * ref + (1 - decay) * param for every parameter pair, one pair at a time.

    TRL's SyncRefModelCallback formula (alpha = 1 - decay, the same in-place ops), not its gathering: under ZeRO-3
    TRL gathers every parameter of both models at once, two more whole models per GPU (+30.9 GiB at step 10 for
    Qwen2.5-VL-7B: out of memory on 80 GB cards). Here one pair at a time is gathered, as in the authors'
    moving_average, the reference's parameter updated on rank 0 and broadcast back (modifier_rank=0: without it
    DeepSpeed discards the change). A reference parameter not partitioned by ZeRO-3 is whole on every rank and is
    updated there."""
    alpha = 1.0 - decay
    with torch.no_grad():
        for param, target in zip(policy.parameters(), ref.parameters(), strict=True):
            if not (hasattr(param, "ds_id") or hasattr(target, "ds_id")):
                target.data.mul_(1.0 - alpha).add_(param.data, alpha=alpha)
                continue
            import deepspeed

            gathered = deepspeed.zero.GatheredParameters
            # the policy's parameter is only read (no broadcast back); the reference's is written on rank 0 and
            # broadcast on exit. A parameter without ds_id makes its context a no-op.
            with gathered([param]), gathered([target], modifier_rank=0):
                if not hasattr(target, "ds_id") or deepspeed.comm.get_rank() == 0:
                    target.data.mul_(1.0 - alpha).add_(param.data, alpha=alpha)


class EmaReferenceCallback(TrainerCallback):
    """Moves the CARE reference toward the policy every `ema_every` optimizer steps (`ema_update`)."""

    def __init__(self, ref_model, accelerator, settings: CareSettings):
        self.ref_model, self.accelerator, self.settings = ref_model, accelerator, settings

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.settings.ema_every == 0:
            policy = self.accelerator.unwrap_model(model) if self.accelerator is not None else model
            ema_update(policy, self.ref_model, self.settings.ema_decay)


class CareBonus:
    """TRL reward function adding the CARE bonus; `bind` gives it the trainer and the EMA reference model."""

    def __init__(self, settings: CareSettings, num_generations: int):
        self.__name__ = "care_bonus"  # TRL names the reward column (rewards/care_bonus/mean) after it
        self.settings = settings
        self.num_generations = num_generations
        self.trainer = None
        self.ref_model = None

    def bind(self, trainer, ref_model) -> None:
        self.trainer, self.ref_model = trainer, ref_model

    def __call__(self, prompts, completions, completion_ids, answer, log_metric=None, **kwargs) -> list[float]:
        if self.trainer is None:
            raise RuntimeError("CareBonus used before bind(trainer, ref_model)")
        acc = torch.tensor(accuracy_reward(completions, answer))
        was_training = self.ref_model.training
        self.ref_model.eval()
        p = answer_confidence(
            self.ref_model,
            self.trainer.processing_class,
            prompts,
            completion_ids,
            self.settings.conf_clamp,
            self.settings.span,
            getattr(self.trainer, "eos_token_ids", None),
        )
        self.ref_model.train(was_training)
        # Groups may straddle processes: decide on the gathered batch (TRL's own layout), keep the local slice.
        accel = self.trainer.accelerator
        acc_all = accel.gather(acc.to(accel.device)).cpu()
        p_all = accel.gather(p.to(accel.device)).cpu()
        d = care_bonus(acc_all, p_all, self.num_generations, self.settings)
        if log_metric is not None:
            log_metric("care/bonus_rate", (d.bonus > 0).float().mean().item())
            log_metric("care/accurate_rate", d.accurate.float().mean().item())
            if d.accurate.any():
                log_metric("care/ref_conf_accurate", p_all[d.accurate].mean().item())
        local = slice(accel.process_index * len(acc), (accel.process_index + 1) * len(acc))
        return d.bonus[local].tolist()
