"""Tiny local datasets in each source's own raw shape, so the adapters run end to end without the network.

Each adapter module writes its own fixture (it knows its source's columns); this module holds what they share:
images carrying a learnable class signal, the question bank, and saving in the Hub's on-disk layout
(`<dir>/<config>/` as `DatasetDict.save_to_disk`, one split per key), which `load_from_disk` reads back.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np

# (modality keyword phrase, question) pairs: the phrase lets the keyword labeller find a spread of modalities.
SCENES = [
    ("MRI", "this brain MRI"),
    ("CT", "this abdominal CT scan"),
    ("ultrasound", "this ultrasound image"),
    ("X-ray", "this chest X-ray"),
    ("microscopy", "this H&E stained microscopy image"),
    ("dermatology", "this dermoscopy image of a skin lesion"),
    ("OCT", "this retinal OCT scan"),
    ("fundus", "this fundus photograph"),
    ("none", "this figure"),
]
FINDINGS = [
    "a mass",
    "an effusion",
    "a fracture",
    "normal tissue",
    "inflammation",
    "a cyst",
    "calcification",
    "edema",
    "necrosis",
    "a nodule",
]


def signal_image(cls: int, n_classes: int, size: int, rng: np.random.Generator, pattern: int = 0):
    """An RGB image whose hue encodes `cls` (the answer) and whose stripe period encodes `pattern` (e.g. modality),
    plus Gaussian noise: a tiny model can learn it, nothing else about it is meaningful."""
    from PIL import Image

    rgb = np.array(colorsys.hsv_to_rgb(cls / max(n_classes, 1), 0.8, 0.85))
    img = np.broadcast_to(rgb, (size, size, 3)).copy()
    if pattern:
        stripes = (np.arange(size) // max(1, size // (2 * pattern + 2))) % 2
        img *= (0.75 + 0.25 * stripes)[:, None, None]
    img = np.clip(img + rng.normal(0, 0.08, img.shape), 0, 1)
    return Image.fromarray((img * 255).round().astype(np.uint8), mode="RGB")


def save_splits(out_dir: Path, config: str, splits: dict, features) -> None:
    """Write {split: columns dict} as a DatasetDict at out_dir/config (the layout `load_from_disk` reads)."""
    from datasets import Dataset, DatasetDict
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    dd = DatasetDict({s: Dataset.from_dict(cols, features=features) for s, cols in splits.items()})
    dd.save_to_disk(str(Path(out_dir) / config))


def mcq_question(rng: np.random.Generator, i: int) -> tuple[str, str, list[str], int]:
    """(modality, question, 4 options, answer index) for a synthetic multiple-choice row."""
    modality, scene = SCENES[i % len(SCENES)]
    options = [str(o) for o in rng.choice(FINDINGS, size=4, replace=False)]
    answer = int(rng.integers(0, 4))
    return modality, f"What is shown in {scene}?", options, answer


def closed_rows(rng: np.random.Generator, n: int, size: int, scene: str) -> list[dict]:
    """Raw rows of a yes/no-style benchmark (PathVQA, SLAKE, VQA-RAD): image, input, label, answer_type.

    Mixes closed yes/no, closed either/or, one closed row no option can be read off, and open questions, so the
    closed-only filter and the skip sidecar are exercised.
    """
    rows = []
    for i in range(n):
        kind = i % 6
        finding = FINDINGS[i % len(FINDINGS)]
        if kind in (0, 1, 2):
            yes = bool(rng.integers(0, 2))
            q, a, t, cls = f"Is there {finding} in {scene}?", "yes" if yes else "no", "CLOSED", int(yes)
        elif kind == 3:
            side = ["left", "right"][int(rng.integers(0, 2))]
            q, a, t, cls = f"Is the {finding.split()[-1]} on the left or right?", side, "CLOSED", 2 + (side == "right")
        elif kind == 4:
            q, a, t, cls = f"How many lesions are seen in {scene}?", "two", "CLOSED", 4
        else:
            q, a, t, cls = f"What abnormality is seen in {scene}?", finding, "OPEN", 5
        rows.append({"image": signal_image(cls, 6, size, rng), "input": q, "label": a, "answer_type": t})
    return rows
