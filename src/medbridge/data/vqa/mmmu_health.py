"""MMMU's health & medicine subjects (MMMU/MMMU), validation + dev (the test split has no public answers).

Raw shape (MMMU/MMMU dataset card): `id`, `question` (with "<image N>" placeholders), `options` (a Python-literal
string of a list, e.g. "['a', 'b']"), `explanation`, `image_1`..`image_7` (Image or None), `img_type` (a
Python-literal list string), `answer` (a letter for multiple-choice), `topic_difficulty`, `question_type`
("multiple-choice" | "open"), `subfield`. Open questions have no options and are skipped; the placeholders are
removed from the question (the images come first in the prompt, in order), as MedVLThinker-Eval does.
"""

from __future__ import annotations

import ast
import re

from medbridge.data.vqa.base import Adapter, Context, Skip, answer_letter, mcq_fields, parse_options

SUBJECTS = [
    "Basic_Medical_Science",
    "Clinical_Medicine",
    "Diagnostics_and_Laboratory_Medicine",
    "Pharmacy",
    "Public_Health",
]
IMAGE_COLUMNS = tuple(f"image_{i}" for i in range(1, 8))


def convert(row: dict, ctx: Context) -> dict:
    qtype = str(row.get("question_type") or "")
    if qtype != "multiple-choice":
        raise Skip(f"question_type {qtype or 'missing'!r}: only multiple-choice questions have options")
    question = re.sub(r"\s*<image \d+>\s*", " ", str(row.get("question") or ""))
    options = parse_options(row.get("options"))
    try:
        kinds = ast.literal_eval(str(row.get("img_type") or "[]"))
    except (ValueError, SyntaxError):
        kinds = []
    modality = "; ".join(map(str, kinds)) or None
    meta = {"mmmu_id": row.get("id"), "subfield": row.get("subfield"), "topic_difficulty": row.get("topic_difficulty")}
    return mcq_fields(question, options, answer_letter(row.get("answer"), options), modality, meta)


def images(row: dict, ctx: Context) -> list:
    out = [row[c] for c in IMAGE_COLUMNS if row.get(c) is not None]
    if not out:
        raise Skip("no image")
    return out


def item_id(row: dict, split: str, index: int) -> str | None:
    return f"mmmu_health-{row['id']}" if row.get("id") else None


def fixture(out_dir, spec: dict, rng) -> None:
    from datasets import Features, Image, Value

    from medbridge.data.vqa.fixtures import mcq_question, save_splits, signal_image

    size = spec["image_size"]
    features = Features(
        {
            "id": Value("string"),
            "question": Value("string"),
            "options": Value("string"),
            "explanation": Value("string"),
            **{c: Image() for c in IMAGE_COLUMNS},
            "img_type": Value("string"),
            "answer": Value("string"),
            "topic_difficulty": Value("string"),
            "question_type": Value("string"),
            "subfield": Value("string"),
        }
    )
    per_split = {"dev": max(1, spec["n_rows"] // 8), "validation": max(2, spec["n_rows"] // 4)}
    for subject in SUBJECTS:
        splits = {}
        for split, n in per_split.items():
            cols = {k: [] for k in features}
            for i in range(n):
                _, q, opts, ans = mcq_question(rng, i)
                is_open = i == n - 1 and split == "validation"  # one open question per subject: skipped
                two = i % 3 == 0  # some rows carry two images
                cols["id"].append(f"{split}_{subject}_{i + 1}")
                cols["question"].append(f"<image 1> {q}" + (" Compare with <image 2>." if two else ""))
                cols["options"].append("[]" if is_open else repr(opts))
                cols["explanation"].append("")
                for j, c in enumerate(IMAGE_COLUMNS):
                    cols[c].append(signal_image(ans, 4, size, rng) if j == 0 or (two and j == 1) else None)
                cols["img_type"].append("['Microscopic Images']" if i % 2 else "['CT Scans']")
                cols["answer"].append("42" if is_open else "ABCD"[ans])
                cols["topic_difficulty"].append("Medium")
                cols["question_type"].append("open" if is_open else "multiple-choice")
                cols["subfield"].append(subject.replace("_", " "))
            splits[split] = cols
        save_splits(out_dir, subject, splits, features)


ADAPTER = Adapter(
    name="mmmu_health",
    kind="benchmark",
    hub={"id": "MMMU/MMMU", "configs": SUBJECTS, "splits": ["validation", "dev"]},
    convert=convert,
    images=images,
    fixture=fixture,
    image_columns=IMAGE_COLUMNS,
    consolidated_name="MMMU-medical",
    item_id=item_id,
)
