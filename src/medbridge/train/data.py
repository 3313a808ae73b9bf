"""MCQ items -> the HF datasets TRL trains on: conversational prompt/completion rows (SFT) and prompt rows (GRPO).

Prompts are single user turns holding the prompt text; the `images` column holds the item's images, which TRL places
before the text (`prepare_multimodal_messages`), the same layout as medbridge.prompts.messages.
"""

from __future__ import annotations

from pathlib import Path

from medbridge import MedbridgeError
from medbridge.data.mcq import check_items, load_item_images
from medbridge.io import read_jsonl
from medbridge.prompts import prompt_text, sft_target


def load_train_items(paths: list[str | Path]) -> list[dict]:
    """The items of one or more MCQ JSONL files (MedMNIST train items, a VQA training set), checked, in order."""
    if not paths:
        raise MedbridgeError("no training items given; pass --train-items with at least one MCQ JSONL file")
    items, seen = [], set()
    for path in paths:
        for item in check_items(read_jsonl(path), str(path)):
            if item["id"] in seen:
                raise MedbridgeError(f"{path}: item id {item['id']!r} appears twice in the training items")
            seen.add(item["id"])
            items.append(item)
    return items


def _images(item: dict, cache: dict) -> list:
    """PIL images for npz-backed items; image files stay paths (decoded lazily by datasets' Image feature)."""
    out = []
    for ref in item["images"]:
        if "path" in ref:
            if not Path(ref["path"]).exists():
                raise MedbridgeError(f"item {item['id']}: image {ref['path']} is missing; remake the item set")
            out.append(ref["path"])
        else:
            out.extend(load_item_images({**item, "images": [ref]}, cache))
    return out


def _features(kind: str):
    from datasets import Features, Image, List, Value

    turn = List({"role": Value("string"), "content": Value("string")})
    cols = {"prompt": turn, "images": List(Image())}
    cols.update({"completion": turn} if kind == "sft" else {"answer": Value("string"), "id": Value("string")})
    return Features(cols)


def sft_dataset(items: list[dict], prompt_kinds: list[str]):
    """One row per item and prompt kind: the paper's prompt -> medbridge.prompts.sft_target (loss on it only)."""
    from datasets import Dataset

    cache: dict = {}
    rows = [
        {
            "prompt": [{"role": "user", "content": prompt_text(it, kind)}],
            "completion": [{"role": "assistant", "content": sft_target(it)}],
            "images": _images(it, cache),
        }
        for it in items
        for kind in prompt_kinds
    ]
    return Dataset.from_list(rows, features=_features("sft"))


def grpo_dataset(items: list[dict], prompt_kind: str = "rl", letter_instruction: bool = False):
    """One row per item: the RL prompt (with upstream GRPO-CARE's "only the single option letter" line appended when
    `letter_instruction`), the images, and the answer letter the accuracy reward checks."""
    from datasets import Dataset

    from medbridge.prompts import LETTER_INSTRUCTION

    cache: dict = {}
    tail = LETTER_INSTRUCTION if letter_instruction else ""
    rows = [
        {
            "prompt": [{"role": "user", "content": prompt_text(it, prompt_kind) + tail}],
            "images": _images(it, cache),
            "answer": it["answer"],
            "id": it["id"],
        }
        for it in items
    ]
    return Dataset.from_list(rows, features=_features("grpo"))


def fit_to_bounds(image, min_pixels: int, max_pixels: int):
    """`image` resized as Qwen2-VL's image processor would (transformers' `smart_resize`: sides multiples of 28 px,
    pixels within the bounds). Such an image passes any processor whose bounds contain its size unchanged."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    from medbridge.engine import PATCH_PX

    w, h = image.size
    h2, w2 = smart_resize(h, w, factor=PATCH_PX, min_pixels=min_pixels, max_pixels=max_pixels)
    return image if (w2, h2) == (w, h) else image.convert("RGB").resize((w2, h2), resample=3)  # 3: bicubic, Qwen's


def with_fitted_images(dataset, processor, engine_processor=None):
    """The dataset with every image resized to the trainer's processor bounds as it is read. TRL tokenizes a prompt
    with the trainer's processor (train.grpo.max_pixels) but hands vLLM the image itself, which vLLM resizes under
    the checkpoint's own bounds (`engine_processor`): a larger image (PMC-VQA's, long side ~1024) would get more
    placeholder tokens in the rollout than in the loss. Resized first to the bounds both processors accept (the
    trainer's, within the checkpoint's), both see one size."""
    lo, hi = _bounds(processor)
    if engine_processor is not None:
        elo, ehi = _bounds(engine_processor)
        lo, hi = max(lo, elo), min(hi, ehi)
        if lo > hi:
            raise MedbridgeError(
                f"the trainer's pixel bounds ({_bounds(processor)}) and the checkpoint's "
                f"({(elo, ehi)}) share no image size; change train.grpo.min_pixels / max_pixels"
            )

    def fit(batch):
        batch["images"] = [[fit_to_bounds(im, lo, hi) for im in ims] for ims in batch["images"]]
        return batch

    return dataset.with_transform(fit)


def _bounds(processor) -> tuple[int, int]:
    size = processor.image_processor.size  # Qwen2-VL processors keep min/max pixels here
    return size["shortest_edge"], size["longest_edge"]
