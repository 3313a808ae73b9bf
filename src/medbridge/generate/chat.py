"""Chat-formatted prompts for generation: the processor's template with the assistant turn opened."""

from __future__ import annotations

from medbridge.io import sha256_text
from medbridge.prompts import messages


def chat_prompt(processor, item: dict, kind: str) -> str:
    # add_generation_prompt=True opens the assistant turn; without it (the authors' inference.py) the model
    # continues the user turn instead of answering.
    return processor.apply_chat_template(messages(item, kind), add_generation_prompt=True, tokenize=False)


def user_turn(processor, images: list, text: str) -> str:
    """A user turn of images and a text, assistant turn opened (the judge's and the modality labeller's questions)."""
    content = [*({"type": "image"} for _ in images), {"type": "text", "text": text}]
    return processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )


def prompt_hash(text: str) -> str:
    return sha256_text(text)[:16]
