"""The paper's prompts, verbatim (typo included), and the chat messages built from an MCQ item."""

from __future__ import annotations

# RQ2 evaluation prompt (authors' code, verbatim: note the missing space after "tags,").
EVAL_INSTRUCTION = (
    "First output the thinking process in <think> </think> tags,"
    "Then output the final answer in <answer> </answer> tags.\n"
    "IMPORTANT: In <answer>, output ONLY the single option letter, for example <answer>A</answer>"
)
# GRPO training prompt (GRPO-CARE / R1-V style), appended after the question.
RL_INSTRUCTION = (
    " First think about the reasoning process in the mind and then provide the user with the answer. The reasoning "
    "process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively, i.e., "
    "<think> reasoning process here </think><answer> answer here </answer>"
)

# Upstream GRPO-CARE's multiple-choice line (TencentARC/GRPO-CARE grpo.py, TYPE_TEMPLATE), appended after its question
# template; the authors' fork dropped it (train.grpo.letter_instruction adds it back).
LETTER_INSTRUCTION = (
    " Please provide only the single option letter (e.g., A, B, C, D, etc.) within the <answer> </answer> tags."
)


def options_block(options: dict[str, str]) -> str:
    return "\n".join(f"{letter}. {text}" for letter, text in options.items())


def eval_prompt(question: str, options: dict[str, str]) -> str:
    return f"{question}\n\nOptions:\n{options_block(options)}\n{EVAL_INSTRUCTION}"


def rl_prompt(question: str, options: dict[str, str]) -> str:
    return f"{question}\nOptions:\n{options_block(options)}{RL_INSTRUCTION}"


PROMPTS = {"eval": eval_prompt, "rl": rl_prompt}


def prompt_text(item: dict, kind: str = "eval") -> str:
    return PROMPTS[kind](item["question"], item["options"])


def messages(item: dict, kind: str = "eval") -> list[dict]:
    """One user turn: the item's image(s) first, then the prompt (Qwen2.5-VL's convention)."""
    n_images = len(item.get("images", [])) or 1
    content = [{"type": "image"} for _ in range(n_images)]
    content.append({"type": "text", "text": prompt_text(item, kind)})
    return [{"role": "user", "content": content}]


def sft_target(item: dict) -> str:
    """The assistant answer SFT teaches: a short reasoning trace, then the letter in the paper's tags."""
    return f"<think>The image shows {item['options'][item['answer']]}.</think><answer>{item['answer']}</answer>"
