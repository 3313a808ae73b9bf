"""GRPO-CARE's consistency bonus, as the authors run it, on TRL's GRPOTrainer.

For every rollout, p = exp(mean log-prob of its answer-span tokens) under an EMA copy of the policy (the reference),
clamped at `conf_clamp`. Within each group (the `num_generations` rollouts of one prompt; the authors' trainer holds
one prompt's rollouts per device and computes these statistics per device, i.e. per group):
  accurate  = acc > 0.1 and acc >= mean acc of the group
  confident = p >= (mean p over the group's accurate rollouts) - conf_margin
  bonus     = bonus_weight * acc for rollouts both accurate and confident, else 0.
The bonus is added to the summed reward before the group-relative advantage. The reference starts as the initial
policy and is updated every `ema_every` optimizer steps as ref = decay * ref + (1 - decay) * param (torch.lerp(param,
ref, decay)); that update is TRL's own SyncRefModelCallback with mixup alpha 1 - decay (ZeRO-3 aware).

Answer span: the completion tokens overlapping the text the accuracy reward reads (the content of the last
<answer>...</answer>, else the whole completion). An empty span gives mean log-prob 0 (p = 1 before the clamp), as
the authors' masked mean does; only accurate rollouts' p matters, and those always have a non-empty span.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from medbridge.train.rewards import accuracy_reward, answer_span


@dataclass(frozen=True)
class CareSettings:
    enabled: bool = True
    ema_decay: float = 0.995
    ema_every: int = 10
    conf_clamp: float = 0.95
    conf_margin: float = 0.01
    bonus_weight: float = 0.5

    @classmethod
    def from_config(cls, care: dict) -> CareSettings:
        return cls(**{k: care[k] for k in cls.__dataclass_fields__ if k in care})


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


def span_mean_logprob(token_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over each row, 0 for an empty mask (the authors' sum / (count + 1e-6))."""
    return (token_logps * mask).sum(dim=1) / (mask.sum(dim=1) + 1e-6)


def answer_confidence(model, processor, prompts: list, completion_ids: list[list[int]], clamp: float) -> torch.Tensor:
    """p per rollout under `model` (the EMA reference): exp(mean log-prob of the answer-span tokens), clamped.

    `prompts` are TRL's conversational prompts with the images already placed in them, rendered and processed as
    GRPOTrainer renders them for generation. One batched forward over all rollouts (prompts left-padded, completions
    right-padded), with logits kept only at the positions that predict answer-span tokens (a 2048-token completion's
    full logits over a 150k vocabulary would not fit); one forward per call, so under ZeRO-3 every process runs the
    same number.
    """
    if not completion_ids:
        return torch.zeros(0)
    tok = processor.tokenizer
    device = next(model.parameters()).device
    texts = [processor.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in prompts]
    images = [part["image"] for p in prompts for m in p if isinstance(m["content"], list)
              for part in m["content"] if part.get("type") == "image"]  # fmt: skip
    enc = processor(text=texts, images=images or None, return_tensors="pt", padding=True, padding_side="left")
    n, width = len(completion_ids), max(len(ids) for ids in completion_ids)
    comp = torch.full((n, width), tok.pad_token_id, dtype=torch.long)
    comp_mask = torch.zeros(n, width, dtype=torch.long)
    span = torch.zeros(n, width, dtype=torch.bool)
    for i, ids in enumerate(completion_ids):
        comp[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        comp_mask[i, : len(ids)] = 1
        span[i, : len(ids)] = torch.tensor(answer_token_mask([tok.decode([t], skip_special_tokens=True) for t in ids]))
    inputs = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")}
    for key in ("token_type_ids", "mm_token_type_ids"):  # per-token fields: completion tokens are text (0)
        if key in inputs:
            inputs[key] = torch.cat([inputs[key], torch.zeros_like(comp)], dim=1)
    plen = enc["input_ids"].shape[1]
    # logits at position plen - 1 + j predict completion token j; keep only those of span tokens (an empty span
    # keeps one position so the forward stays the same for every rollout)
    keep = sorted({plen - 1 + j for j in span.nonzero()[:, 1].tolist()} or {plen - 1})
    with torch.no_grad():
        logits = model(input_ids=torch.cat([enc["input_ids"], comp], 1).to(device),
                       attention_mask=torch.cat([enc["attention_mask"], comp_mask], 1).to(device),
                       logits_to_keep=torch.tensor(keep, device=device),
                       **{k: v.to(device) for k, v in inputs.items()}).logits  # fmt: skip
    col = {pos - plen + 1: c for c, pos in enumerate(keep)}  # completion index -> kept logits column
    logps = torch.zeros(n, width)
    rows, js = span.nonzero(as_tuple=True)
    if len(rows):
        cols = torch.tensor([col[j] for j in js.tolist()], device=logits.device)
        picked = logits[rows.to(logits.device), cols].float().log_softmax(-1)
        logps[rows, js] = picked.gather(-1, comp[rows, js][:, None].to(logits.device))[:, 0].cpu()
    return span_mean_logprob(logps, span.float()).exp().clamp(max=clamp)


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
        p = answer_confidence(self.ref_model, self.trainer.processing_class, prompts, completion_ids,
                              self.settings.conf_clamp)  # fmt: skip
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
