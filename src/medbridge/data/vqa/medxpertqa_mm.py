"""MedXpertQA MM (TsinghuaC3I/MedXpertQA, config MM, split test; 2,000 expert-level multimodal questions).

Raw shape (dataset card and its first row): `id` ("MM-0"), `question` (ending in "\\nAnswer Choices: (A) ... (E) ..."),
`options` ({"A": .., .., "E": ..}), `label` (answer letter), `images` (file names, e.g. "MM-0-a.jpeg"),
`medical_task`, `body_system`, `question_type`. The image files are not in the rows: they ship in the dataset
repo's `images.zip`. Give its extracted folder as the benchmark entry's `images_dir`; in hub mode without one, the
archive is downloaded once (huggingface_hub) and extracted under results/<run>/vqa/_cache/.
"""

from __future__ import annotations

from pathlib import Path

from medbridge import MedbridgeError
from medbridge.data.vqa.base import Adapter, Context, Skip, answer_letter, mcq_fields, parse_options


def convert(row: dict, ctx: Context) -> dict:
    question = str(row.get("question") or "").split("\nAnswer Choices:")[0]
    options = parse_options(row.get("options"))
    if not row.get("images"):
        raise Skip("no image file named")
    meta = {k: row.get(k) for k in ("id", "medical_task", "body_system", "question_type")}
    return mcq_fields(question, options, answer_letter(row.get("label"), options), None, meta)


def images(row: dict, ctx: Context) -> list:
    from PIL import Image

    if ctx.images_dir is None:
        raise MedbridgeError("medxpertqa_mm needs its image folder: set `images_dir` in its vqa.benchmarks entry")
    out = []
    for name in row["images"]:
        path = Path(ctx.images_dir) / name
        if not path.exists():
            raise Skip("image file missing from images_dir")
        with Image.open(path) as im:
            out.append(im.convert("RGB"))
    return out


def item_id(row: dict, split: str, index: int) -> str | None:
    return f"medxpertqa_mm-{row['id']}" if row.get("id") else None


def fixture(out_dir, spec: dict, rng) -> None:
    from datasets import Features, List, Value

    from medbridge.data.vqa.fixtures import FINDINGS, save_splits, signal_image

    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    letters = "ABCDE"
    features = Features(
        {
            "id": Value("string"),
            "question": Value("string"),
            "options": {k: Value("string") for k in letters},
            "label": Value("string"),
            "images": List(Value("string")),
            "medical_task": Value("string"),
            "body_system": Value("string"),
            "question_type": Value("string"),
        }
    )
    splits = {}
    for split, n in (("dev", max(1, spec["n_rows"] // 4)), ("test", spec["n_rows"])):
        cols = {k: [] for k in features}
        for i in range(n):
            rid = f"MM-{split}-{i}" if split == "dev" else f"MM-{i}"
            opts = {k: str(v) for k, v in zip(letters, rng.choice(FINDINGS, size=5, replace=False))}
            ans = int(rng.integers(0, 5))
            names = [f"{rid}-a.jpeg"] + ([f"{rid}-b.jpeg"] if i % 3 == 0 else [])
            for name in names:
                signal_image(ans, 5, spec["image_size"], rng).save(out_dir / "images" / name, format="JPEG")
            choices = " ".join(f"({k}) {v}" for k, v in opts.items())
            cols["id"].append(rid)
            cols["question"].append(
                f"A patient presents with pain. What does the image show?\nAnswer Choices: {choices}"
            )
            cols["options"].append(opts)
            cols["label"].append(letters[ans])
            cols["images"].append(names)
            cols["medical_task"].append("Diagnosis")
            cols["body_system"].append("Skeletal")
            cols["question_type"].append("Reasoning")
        splits[split] = cols
    save_splits(out_dir, "MM", splits, features)


ADAPTER = Adapter(
    name="medxpertqa_mm",
    kind="benchmark",
    hub={"id": "TsinghuaC3I/MedXpertQA", "configs": ["MM"], "splits": ["test"], "images_archive": "images.zip"},
    convert=convert,
    images=images,
    fixture=fixture,
    consolidated_name="MedXpertQA-MM",
    item_id=item_id,
)
