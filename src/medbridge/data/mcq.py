"""Classification -> multiple-choice items (the RQ2 setup), as JSONL rows that every later step reads.

Item schema (also used by the Table 3 benchmark adapters):
  id, source, split, images: [{npz, split, index} | {path}], question, options {letter: text}, answer (letter),
  answer_text, modality, label (class index; -1 for benchmarks).
ChestMNIST is multi-label; the rule here: only images with exactly one positive finding become items, asking which
finding is present, with all 14 findings as options (images with none or several findings have no single answer).
Balanced (the paper: "balanced subsets of the official test splits"): every class gets the same number of items,
min(per_class, the smallest class's size), seeded (`mcq.balance: equal`); `capped` keeps up to per_class of each
class (all of a rarer class), as training sets do. RetinaMNIST's INFO names its classes "0".."4" (diabetic
retinopathy grades); `mcq.retina_options` keeps those digits (`digits`, the label metadata as is) or spells out the
grades (`grades`). docs/FIDELITY.md lists both choices.
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np

from medbridge import MedbridgeError
from medbridge.data.medmnist import DATASETS, SPLITS, dataset_info, load_split

# What each task's images are, for the question text.
IMAGE_KIND = {
    "breastmnist": "breast ultrasound", "chestmnist": "chest X-ray", "pneumoniamnist": "pediatric chest X-ray",
    "organamnist": "axial abdominal CT", "organcmnist": "coronal abdominal CT", "organsmnist": "sagittal abdominal CT",
    "bloodmnist": "blood cell microscopy", "pathmnist": "colon pathology", "tissuemnist": "kidney cortex microscopy",
    "dermamnist": "dermatoscopic", "octmnist": "retinal OCT", "retinamnist": "retinal fundus",
}  # fmt: skip


def question_for(flag: str) -> str:
    if dataset_info(flag).multi_label:
        return f"Which finding is present in this {IMAGE_KIND[flag]} image?"
    return f"Which class best describes this {IMAGE_KIND[flag]} image?"


def class_of(flag: str, labels: np.ndarray) -> np.ndarray:
    """Single class per image; -1 where the ChestMNIST rule gives none (zero or several findings)."""
    if dataset_info(flag).multi_label:
        single = labels.sum(1) == 1
        return np.where(single, labels.argmax(1), -1)
    return labels[:, 0].astype(np.int64)


BALANCE = ("equal", "capped")
# RetinaMNIST (DeepDRiD) grades 0-4, the international clinical diabetic retinopathy scale
RETINA_GRADES = (
    "no diabetic retinopathy (grade 0)",
    "mild non-proliferative diabetic retinopathy (grade 1)",
    "moderate non-proliferative diabetic retinopathy (grade 2)",
    "severe non-proliferative diabetic retinopathy (grade 3)",
    "proliferative diabetic retinopathy (grade 4)",
)
RETINA_OPTIONS = ("digits", "grades")


def balanced_indices(
    classes: np.ndarray, per_class: int, rng: np.random.Generator, balance: str = "equal"
) -> np.ndarray:
    """Images of every labelled class, drawn without replacement, seeded. `equal`: the same number of each class,
    min(per_class, smallest class); `capped`: at most per_class of each (all of a rarer class)."""
    if balance not in BALANCE:
        raise MedbridgeError(f"mcq.balance {balance!r} is unknown; choose one of {list(BALANCE)}")
    present = [np.flatnonzero(classes == c) for c in np.unique(classes[classes >= 0])]
    if not present:
        raise MedbridgeError("no labelled images to draw items from; check the dataset file")
    n = min(per_class, min(len(idx) for idx in present)) if balance == "equal" else per_class
    chosen = [rng.choice(idx, size=min(n, len(idx)), replace=False) for idx in present]
    return np.sort(np.concatenate(chosen))


def option_texts(flag: str, retina_options: str = "digits") -> list[str]:
    """Option texts in class-index order: medmnist's label names (RetinaMNIST: digits or spelled-out grades)."""
    if retina_options not in RETINA_OPTIONS:
        raise MedbridgeError(f"mcq.retina_options {retina_options!r} is unknown; choose one of {list(RETINA_OPTIONS)}")
    labels = list(dataset_info(flag).labels)
    if flag == "retinamnist" and retina_options == "grades":
        return list(RETINA_GRADES)
    return labels


def make_items(
    flag: str, npz_path: str | Path, split: str, per_class: int, seed: int, option_order: str = "fixed",
    balance: str = "equal", retina_options: str = "digits",
) -> list[dict]:
    info = dataset_info(flag)
    if info.n_classes > len(string.ascii_uppercase):
        raise MedbridgeError(f"{flag} has {info.n_classes} classes, more than 26 option letters")
    _, labels = load_split(npz_path, flag, split)
    classes = class_of(flag, labels)
    rng = np.random.default_rng([seed, DATASETS.index(flag), SPLITS.index(split)])
    letters = string.ascii_uppercase[: info.n_classes]
    texts = option_texts(flag, retina_options)
    items = []
    for i in balanced_indices(classes, per_class, rng, balance):
        order = rng.permutation(info.n_classes) if option_order == "shuffled" else np.arange(info.n_classes)
        options = {letters[j]: texts[c] for j, c in enumerate(order)}
        answer = letters[int(np.flatnonzero(order == classes[i])[0])]
        items.append(
            {
                "id": f"{flag}-{split}-{int(i)}",
                "source": flag,
                "split": split,
                "images": [{"npz": str(npz_path), "split": split, "index": int(i)}],
                "question": question_for(flag),
                "options": options,
                "answer": answer,
                "answer_text": options[answer],
                "modality": info.modality,
                "label": int(classes[i]),
            }
        )
    return items


def load_item_images(item: dict, cache: dict | None = None) -> list:
    """PIL RGB images of an item (from a MedMNIST npz row or an image file)."""
    from PIL import Image

    cache = {} if cache is None else cache
    out = []
    for ref in item["images"]:
        if "npz" in ref:
            key = (ref["npz"], ref["split"])
            if key not in cache:
                cache[key] = load_split(ref["npz"], item["source"], ref["split"])[0]
            arr = cache[key][ref["index"]]
            out.append(Image.fromarray(arr).convert("RGB"))
        elif "path" in ref:
            p = Path(ref["path"])
            if not p.exists():
                raise MedbridgeError(f"item {item['id']}: image {p} is missing; remake the item set")
            with Image.open(p) as im:
                out.append(im.convert("RGB"))
        else:
            raise MedbridgeError(f"item {item['id']}: image reference {ref} has neither `npz` nor `path`")
    return out


def check_items(items: list[dict], where: str) -> list[dict]:
    """Reject an item set a metric cannot be computed on, naming the first bad item."""
    if not items:
        raise MedbridgeError(f"{where} holds no items; remake it or choose a non-empty item set")
    for it in items:
        missing = {"id", "question", "options", "answer", "images"} - set(it)
        if missing:
            raise MedbridgeError(f"{where}: item {it.get('id', '?')} lacks {sorted(missing)}")
        if it["answer"] not in it["options"]:
            raise MedbridgeError(
                f"{where}: item {it['id']} answers {it['answer']!r}, not one of its options {list(it['options'])}"
            )
    return items


def item_data_files(items_path: str | Path) -> list[str]:
    """The data files (npz, images) an item set's images come from, for provenance."""
    from medbridge.io import read_jsonl

    files = {ref.get("npz") or ref.get("path") for it in read_jsonl(items_path) for ref in it["images"]}
    return sorted(f for f in files if f)
