"""Build the tiny Qwen2.5-VL-architecture model of the embedded `tiny` profile.

Stock transformers classes only: a `Qwen2_5_VLForConditionalGeneration` with a few small layers and seeded random
weights, a byte-level BPE tokenizer trained here with `tokenizers` on the profile's own prompt corpus (with Qwen's
special tokens and a Qwen-format chat template), and Qwen's own image processor. Saved with `save_pretrained`, it
reloads offline through `AutoProcessor` / `AutoModelForImageTextToText` exactly like a hub checkpoint.
"""

from __future__ import annotations

from pathlib import Path

# Qwen2.5-VL's special tokens, in Qwen's order, so ids and roles match the real tokenizer's layout.
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# The Qwen chat format (system turn, <|im_start|>role ... <|im_end|>, image placeholders); written for this project.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


QWEN25_VL_GENERATION_DEFAULTS = {
    "do_sample": True,
    "temperature": 0.1,
    "top_p": 0.001,
    "top_k": 1,
    "repetition_penalty": 1.05,
}


def train_tokenizer(corpus: list[str], vocab_size: int):
    """Byte-level BPE over `corpus`, wrapped as a transformers fast tokenizer with Qwen's specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
        extra_special_tokens={
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_bos_token": "<|vision_start|>",
            "vision_eos_token": "<|vision_end|>",
        },
    )


def build_tiny_model(out_dir: str | Path, corpus: list[str], spec: dict, seed: int) -> Path:
    """Write a tiny Qwen2.5-VL model + processor to `out_dir` (weights as safetensors)."""
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = train_tokenizer(corpus, spec["vocab_size"])
    pixels = spec["image_pixels"]
    image_processor = Qwen2VLImageProcessor(
        size={"shortest_edge": pixels, "longest_edge": pixels}, patch_size=14, merge_size=2, temporal_patch_size=2
    )
    video_processor = Qwen2VLVideoProcessor(size={"shortest_edge": pixels, "longest_edge": pixels})
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )
    hidden, heads = spec["hidden_size"], spec["num_attention_heads"]
    half_head = hidden // heads // 2
    mrope = [half_head - 2 * (half_head // 3), half_head // 3, half_head // 3]  # temporal, height, width
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            intermediate_size=spec["intermediate_size"],
            num_hidden_layers=spec["num_hidden_layers"],
            num_attention_heads=heads,
            num_key_value_heads=spec["num_key_value_heads"],
            max_position_embeddings=spec["max_position_embeddings"],
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope},
            bos_token_id=ids("<|endoftext|>"),
            eos_token_id=ids("<|im_end|>"),
            pad_token_id=ids("<|endoftext|>"),
            tie_word_embeddings=True,
        ),
        vision_config=dict(
            depth=spec["vision_depth"],
            hidden_size=spec["vision_hidden_size"],
            intermediate_size=2 * spec["vision_hidden_size"],
            num_heads=spec["vision_num_heads"],
            out_hidden_size=hidden,
            fullatt_block_indexes=[spec["vision_depth"] - 1],
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=112,
        ),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = [ids("<|im_end|>"), ids("<|endoftext|>")]
    model.generation_config.pad_token_id = ids("<|endoftext|>")
    # The sampling defaults Qwen2.5-VL-7B-Instruct ships in its generation_config.json, so the tiny run meets the
    # same trap as the real checkpoints: code that lets them through samples near-greedy texts (top_k 1).
    for key, value in QWEN25_VL_GENERATION_DEFAULTS.items():
        setattr(model.generation_config, key, value)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    return out_dir


def tokenizer_corpus(datasets: list[str]) -> list[str]:
    """Texts the tiny tokenizer is trained on: every prompt and answer form the pipeline can produce."""
    from medbridge.data.mcq import question_for
    from medbridge.data.medmnist import dataset_info
    from medbridge.prompts import PROMPTS, sft_target

    texts = [CHAT_TEMPLATE, "You are a helpful assistant.", "system user assistant"]
    for flag in datasets:
        info = dataset_info(flag)
        letters = [chr(65 + i) for i in range(info.n_classes)]
        item = {"question": question_for(flag), "options": dict(zip(letters, info.labels))}
        for kind in PROMPTS:
            texts.append(PROMPTS[kind](item["question"], item["options"]))
        for letter in letters:
            texts += [sft_target({**item, "answer": letter})] * 4
    return texts
