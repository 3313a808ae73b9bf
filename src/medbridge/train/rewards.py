"""GRPO reward functions as GRPO-CARE runs them (accuracy, format, optional length bonus), in TRL's signature.

TRL calls each function with the rollouts' `completions` (conversational: `[{"role": "assistant", "content": ...}]`)
plus every dataset column repeated per rollout (here `answer`, the item's option letter), and sums the returned
lists. The CARE consistency bonus is in medbridge.train.care (it needs the EMA reference model).

`answer_not_a_letter` is a metric, not a reward: TRL computes and logs it like one (`rewards/answer_not_a_letter/mean`
per step: the share of rollouts whose last closed <answer> tag holds more than an option letter, which the exact-match
accuracy reward scores 0 however right the text is), and its weight 0 keeps it out of the summed reward. The authors'
RL prompt, unlike upstream GRPO-CARE's, never asks for the letter alone (`train.grpo.letter_instruction`).
"""

from __future__ import annotations

import re

ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
FORMAT_RE = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
LENGTH_BONUS = 0.2  # GRPO-CARE's optional length reward (off in the paper's runs)
LENGTH_RANGE = (320, 512)  # completion tokens that earn it


def completion_text(completion) -> str:
    """The text of one rollout: a plain string, or the content of a conversational assistant turn."""
    if isinstance(completion, str):
        return completion
    content = completion[-1]["content"]
    if isinstance(content, list):  # structured content blocks
        return "".join(part.get("text") or "" for part in content if part.get("type") == "text")
    return content


def answer_span(text: str) -> tuple[int, int]:
    """Character span the accuracy reward reads: the last <answer>...</answer> content, else the whole text."""
    last = None
    for last in ANSWER_RE.finditer(text):  # noqa: B007 (the loop keeps the last match)
        pass
    return (last.start(1), last.end(1)) if last else (0, len(text))


def clean_answer(text: str) -> str:
    """GRPO-CARE's normalisation: newlines to spaces, trimmed, trailing '.' stripped, lowercased."""
    text = re.sub(r"(?<=\s)[\n\r]", "", text)  # a newline after whitespace vanishes
    text = re.sub(r"[\n\r]", " ", text)  # any other newline becomes a space
    return text.strip().rstrip(".").lower()


def is_correct(text: str, answer: str) -> bool:
    start, end = answer_span(text)
    return clean_answer(text[start:end].strip()) == clean_answer(str(answer).strip())


def accuracy_reward(completions, answer, **kwargs) -> list[float]:
    """1.0 where the last <answer> content (the whole completion if there is none) equals the option letter."""
    return [float(is_correct(completion_text(c), a)) for c, a in zip(completions, answer, strict=True)]


def format_reward(completions, **kwargs) -> list[float]:
    """1.0 where the whole completion is `<think>...</think> <answer>...</answer>` (re.fullmatch, DOTALL)."""
    return [float(FORMAT_RE.fullmatch(completion_text(c)) is not None) for c in completions]


LETTER_RE = re.compile(r"[a-z]")


def answer_not_a_letter(completions, **kwargs) -> list[float]:
    """1.0 where the last closed <answer> tag holds more than a single letter once cleaned as the accuracy reward
    cleans it (e.g. "B. Pneumonia", "pneumonia"); 0.0 for a bare letter or no closed tag (the format reward's case)."""
    out = []
    for c in completions:
        text = completion_text(c)
        tags = ANSWER_RE.findall(text)
        out.append(float(bool(tags) and LETTER_RE.fullmatch(clean_answer(tags[-1].strip())) is None))
    return out


def make_length_reward(num_generations: int):
    """GRPO-CARE's optional length bonus: +0.2 for an accurate rollout of 320-512 tokens, granted only when its
    group (the `num_generations` consecutive rollouts of one prompt) has more than one accurate rollout."""

    def length_bonus(completions, answer, completion_ids, **kwargs) -> list[float]:
        acc = accuracy_reward(completions, answer)
        out = [0.0] * len(acc)
        for g in range(0, len(acc), num_generations):
            accurate = [i for i in range(g, min(g + num_generations, len(acc))) if acc[i] > 0.1]
            if len(accurate) > 1:
                for i in accurate:
                    if LENGTH_RANGE[0] <= len(completion_ids[i]) <= LENGTH_RANGE[1]:
                        out[i] = LENGTH_BONUS
        return out

    return length_bonus
