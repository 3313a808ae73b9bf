"""What each vLLM engine is sized for: its context length (`max_model_len`), derived from the config.

Without one, vLLM plans every engine for the checkpoint's whole context (Qwen2.5-VL: 128,000 tokens) and refuses to
start unless one request that long fits its KV cache: TRL's colocated engine at 0.3 of an 80 GB card, or the 32B judge
on one card, cannot (issue #20). A prompt is at most `max_images` images at the pixel bound, `max_prompt_tokens` of
text (question, options, instructions, chat template) and the completion's token budget; that sum is the context.
"""

from __future__ import annotations

from medbridge import MedbridgeError

PATCH_PX = 28  # Qwen2-VL / Qwen2.5-VL: 14 px ViT patches merged 2 x 2 into one LLM token
QWEN_MAX_PIXELS = 12845056  # Qwen2.5-VL's own image processor bound (16384 tokens), used when the config sets none
JUDGE_VERDICT_TOKENS = 8  # medbridge.score.judge.VLMJudge asks for this many

# (purpose, where its pixel bound, images, prompt allowance and token budget are configured)
PURPOSES = ("generate", "judge", "label", "grpo")


def image_tokens_at_most(max_pixels: int) -> int:
    """LLM tokens of one image resized under `max_pixels` (Qwen's smart_resize keeps h x w <= max_pixels, both
    multiples of 28 px): at most max_pixels / 28^2."""
    return max_pixels // (PATCH_PX * PATCH_PX)


def _section(cfg: dict, purpose: str) -> tuple[dict, str]:
    if purpose == "grpo":
        return cfg["train"]["grpo"], "train.grpo"
    return cfg["evaluate"], "evaluate"


def images_per_prompt(cfg: dict, purpose: str) -> int:
    """Images one request may carry (vLLM's limit_mm_per_prompt): none for the text-only judge, one PMC-VQA image
    for the labeller, else the section's `max_images`."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown engine purpose {purpose!r}")
    if purpose == "judge":
        return 0
    if purpose == "label":
        return 1  # PMC-VQA: one figure per question (medbridge.data.pmc)
    return _section(cfg, purpose)[0]["max_images"]


def context_parts(cfg: dict, purpose: str, max_pixels: int | None = None) -> dict[str, int]:
    """Tokens of the longest request of an engine, by part. `max_pixels`: the bound the engine's processor applies
    (default: the config's, else Qwen's own)."""
    images = images_per_prompt(cfg, purpose)
    sec, _ = _section(cfg, purpose)
    ev = cfg["evaluate"]
    pixels = max_pixels or sec.get("max_pixels") or QWEN_MAX_PIXELS
    text = sec["max_prompt_tokens"]
    if purpose == "generate":
        budget = ev["max_new_tokens"]
    elif purpose == "judge":  # question, options and one whole response, then a short verdict
        text, budget = text + ev["max_new_tokens"], JUDGE_VERDICT_TOKENS
    elif purpose == "label":
        budget = cfg["vqa"]["pmc"]["max_new_tokens"]
    else:
        budget = sec["max_completion_length"]
    return {"images": images * image_tokens_at_most(pixels), "text": text, "completion": budget}


def max_model_len(cfg: dict, purpose: str, max_pixels: int | None = None, model_context: int | None = None) -> int:
    """The context an engine is started with; refused when it exceeds the model's own (`model_context`, its
    max_position_embeddings), naming the keys that shrink it."""
    parts = context_parts(cfg, purpose, max_pixels)
    total = sum(parts.values())
    if model_context is not None and total > model_context:
        _, where = _section(cfg, purpose)
        raise MedbridgeError(
            f"the {purpose} engine needs a context of {total} tokens ({parts}), more than the model's "
            f"{model_context}; lower {where}.max_images, {where}.max_pixels or {where}.max_prompt_tokens, or the "
            "token budget"
        )
    return total


def model_context(path: str, revision: str | None = None) -> int | None:
    """max_position_embeddings of a model's text config, if its config.json can be read (None: unknown)."""
    try:
        from transformers import AutoConfig

        conf = AutoConfig.from_pretrained(path, revision=revision)
    except (OSError, ValueError):
        return None
    text = getattr(conf, "text_config", None) or conf
    return getattr(text, "max_position_embeddings", None)


def processor_max_pixels(processor) -> int | None:
    """The upper pixel bound a Qwen2-VL-style image processor applies (kept in `size` in transformers 5)."""
    ip = getattr(processor, "image_processor", processor)
    size = getattr(ip, "size", None) or {}
    return size.get("longest_edge") or getattr(ip, "max_pixels", None)


def check_images(counts, cfg: dict, purpose: str) -> None:
    """Refuse requests with more images than the engine was sized for (vLLM would reject them mid-job)."""
    limit, most = images_per_prompt(cfg, purpose), max(counts, default=0)
    if most > limit:
        _, where = _section(cfg, purpose)
        raise MedbridgeError(
            f"a {purpose} request carries {most} images, more than the engine is sized for "
            f"({limit}); raise {where}.max_images"
        )
