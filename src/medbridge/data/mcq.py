"""Classification -> multiple-choice items (the RQ2 setup), as JSONL rows that every later step reads.

Item schema (also used by the Table 3 benchmark adapters):
  id, source, split, images: [{npz, split, index} | {path}], question, options {letter: text}, answer (letter),
  answer_text, modality, label (class index; -1 for benchmarks).
ChestMNIST is multi-label; the rule here (`mcq.chestmnist`): images with exactly one positive finding become items
asking which finding is present, with all 14 findings as options, plus (`with_no_finding`, the default, as the
paper's 315 = 15 x 21 supports) images with no finding as a 15th class "no finding"; images with several findings
have no single answer.
Balanced (the paper: "balanced subsets of the official test splits"): every class gets the same number of items,
min(per_class, the smallest class's size), seeded (`mcq.balance: equal`); without `mcq.per_class`, all of the
smallest class and as many of each other (the paper's subsets: every Table 1 denominator is classes x the smallest
test class, e.g. BreastMNIST 84 = 2 x 42, OCTMNIST 1000 = 4 x 250); `capped` keeps up to per_class of each class
(all of a rarer class), as training sets do. RetinaMNIST's INFO names its classes "0".."4" (diabetic
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
    "breastmnist": "breast ultrasound",
    "chestmnist": "chest X-ray",
    "pneumoniamnist": "pediatric chest X-ray",
    "organamnist": "axial abdominal CT",
    "organcmnist": "coronal abdominal CT",
    "organsmnist": "sagittal abdominal CT",
    "bloodmnist": "blood cell microscopy",
    "pathmnist": "colon pathology",
    "tissuemnist": "kidney cortex microscopy",
    "dermamnist": "dermatoscopic",
    "octmnist": "retinal OCT",
    "retinamnist": "retinal fundus",
}


def question_for(flag: str) -> str:
    if dataset_info(flag).multi_label:
        return f"Which finding is present in this {IMAGE_KIND[flag]} image?"
    return f"Which class best describes this {IMAGE_KIND[flag]} image?"


# ChestMNIST as one answer (mcq.chestmnist). `with_no_finding` (default): the 14 single-finding classes plus a
# "no finding" class (images with no positive label), 15 options; `findings_only`: the 14 single-finding classes.
# The paper is silent; its numbers support 15: Table 1's ChestMNIST denominator is 315 = 15 x 21 (15 classes of 21
# each; 14 x 21 = 294 and 14 x 22 = 308 miss it), an inference, not a statement (docs/FIDELITY.md, chestmnist-rule).
CHEST_RULES = ("with_no_finding", "findings_only")
NO_FINDING = "no finding"


def check_chest_rule(rule: str) -> str:
    if rule not in CHEST_RULES:
        raise MedbridgeError(
            f"mcq.chestmnist {rule!r} is unknown; choose one of {list(CHEST_RULES)} (with_no_finding: "
            "14 single findings + 'no finding', 15 options; findings_only: the 14 findings)"
        )
    return rule


def class_names(flag: str, chest: str = "with_no_finding") -> list[str]:
    """The classes of a task as MCQ options and probe labels, in class-index order (ChestMNIST per `chest`)."""
    labels = list(dataset_info(flag).labels)
    if dataset_info(flag).multi_label and check_chest_rule(chest) == "with_no_finding":
        labels.append(NO_FINDING)
    return labels


def class_of(flag: str, labels: np.ndarray, chest: str = "with_no_finding") -> np.ndarray:
    """Single class per image; -1 where the ChestMNIST rule gives none (several findings; no finding under
    `findings_only`). Under `with_no_finding` an image with no finding is class 14 ("no finding")."""
    if dataset_info(flag).multi_label:
        n_pos = labels.sum(1)
        none = len(dataset_info(flag).labels) if check_chest_rule(chest) == "with_no_finding" else -1
        return np.where(n_pos == 1, labels.argmax(1), np.where(n_pos == 0, none, -1)).astype(np.int64)
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
    classes: np.ndarray, per_class: int | None, rng: np.random.Generator, balance: str = "equal"
) -> np.ndarray:
    """Images of every labelled class, drawn without replacement, seeded. `equal`: the same number of each class,
    min(per_class, smallest class), and with per_class None the smallest class's full count (the paper's subsets:
    all of the smallest class and as many of each other); `capped`: at most per_class of each (all of a rarer
    class; None: every image)."""
    if balance not in BALANCE:
        raise MedbridgeError(f"mcq.balance {balance!r} is unknown; choose one of {list(BALANCE)}")
    if per_class is not None and (isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1):
        raise MedbridgeError(
            f"per_class must be a positive integer, or absent for the smallest class's full count; got {per_class!r}"
        )
    present = [np.flatnonzero(classes == c) for c in np.unique(classes[classes >= 0])]
    if not present:
        raise MedbridgeError("no labelled images to draw items from; check the dataset file")
    smallest = min(len(idx) for idx in present)
    cap = max(len(idx) for idx in present) if per_class is None else per_class
    n = min(cap, smallest) if balance == "equal" else cap
    chosen = [rng.choice(idx, size=min(n, len(idx)), replace=False) for idx in present]
    return np.sort(np.concatenate(chosen))


def option_texts(flag: str, retina_options: str = "digits", chest: str = "with_no_finding") -> list[str]:
    """Option texts in class-index order: medmnist's label names (RetinaMNIST: digits or spelled-out grades;
    ChestMNIST: the 14 findings, plus "no finding" under `with_no_finding`)."""
    if retina_options not in RETINA_OPTIONS:
        raise MedbridgeError(f"mcq.retina_options {retina_options!r} is unknown; choose one of {list(RETINA_OPTIONS)}")
    labels = class_names(flag, chest)
    if flag == "retinamnist" and retina_options == "grades":
        return list(RETINA_GRADES)
    return labels


def make_items(
    flag: str,
    npz_path: str | Path,
    split: str,
    per_class: int | None,
    seed: int,
    option_order: str = "fixed",
    balance: str = "equal",
    retina_options: str = "digits",
    chest: str = "with_no_finding",
) -> list[dict]:
    info = dataset_info(flag)
    texts = option_texts(flag, retina_options, chest)
    n_classes = len(texts)
    if n_classes > len(string.ascii_uppercase):
        raise MedbridgeError(f"{flag} has {n_classes} classes, more than 26 option letters")
    _, labels = load_split(npz_path, flag, split)
    classes = class_of(flag, labels, chest)
    rng = np.random.default_rng([seed, DATASETS.index(flag), SPLITS.index(split)])
    letters = string.ascii_uppercase[:n_classes]
    items = []
    for i in balanced_indices(classes, per_class, rng, balance):
        order = rng.permutation(n_classes) if option_order == "shuffled" else np.arange(n_classes)
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
