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
        {"prompt": [{"role": "user", "content": prompt_text(it, prompt_kind) + tail}], "images": _images(it, cache),
         "answer": it["answer"], "id": it["id"]}
        for it in items
    ]  # fmt: skip
    return Dataset.from_list(rows, features=_features("grpo"))
