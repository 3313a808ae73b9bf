"""UCSC-VLAA/MedVLThinker-Eval: the six Table 3 benchmarks already as MCQs in one dataset (split test, 8.2k rows).

Raw shape (MedVLThinker's build scripts): `images` (list of Image), `question`, `options` (a JSON string of
{letter: text}), `answer_label` (letter), `answer` (text), `dataset_name` (pmc_vqa | pathvqa_closed | slake_closed |
vqa_rad_closed | MMMU-medical | MedXpertQA-MM), `dataset_index`, plus `hash`, `reasoning`, `misc` (a JSON string of
source fields; MMMU and MedXpertQA rows only) whose presence in the published version was not confirmed (not read
except `misc`, optionally). With `vqa.source: medvlthinker` each benchmark adapter selects its rows by
`dataset_name`; closed PathVQA/SLAKE/VQA-RAD rows then carry MedVLThinker's LLM-written option sets.
The training pool UCSC-VLAA/MedVLThinker-pmc_vqa (see pmc_vqa_train.py) has the same row shape.
"""

from __future__ import annotations

import json

from medbridge.data.vqa.base import Adapter, Context, answer_letter, image_list, mcq_fields, parse_options

DATASET_NAMES = ["pmc_vqa", "pathvqa_closed", "slake_closed", "vqa_rad_closed", "MMMU-medical", "MedXpertQA-MM"]


def convert(row: dict, ctx: Context) -> dict:
    options = parse_options(row.get("options"))
    meta = {"dataset_name": row.get("dataset_name"), "dataset_index": row.get("dataset_index")}
    try:
        misc = json.loads(row["misc"]) if row.get("misc") else {}
    except (TypeError, json.JSONDecodeError):
        misc = {}
    meta.update({k: v for k, v in misc.items() if k in ("id", "img_type", "subfield", "body_system", "medical_task")})
    return mcq_fields(
        str(row.get("question") or ""), options, answer_letter(row.get("answer_label"), options), None, meta
    )


def images(row: dict, ctx: Context) -> list:
    return image_list(row.get("images"))


def item_id(row: dict, split: str, index: int) -> str | None:
    return None if row.get("dataset_index") is None else f"{row.get('dataset_name')}-{row['dataset_index']}"


def write_rows(out_dir, config: str, split: str, rows: list[dict]) -> None:
    """Save rows (dicts with the columns above, `images` as PIL lists) in this shape."""
    from datasets import Features, Image, List, Value

    from medbridge.data.vqa.fixtures import save_splits

    features = Features(
        {
            "images": List(Image()),
            "question": Value("string"),
            "options": Value("string"),
            "answer_label": Value("string"),
            "answer": Value("string"),
            "dataset_name": Value("string"),
            "hash": Value("string"),
            "dataset_index": Value("int32"),
            "misc": Value("string"),
        }
    )
    cols = {k: [r.get(k) for r in rows] for k in features}
    save_splits(out_dir, config, {split: cols}, features)


def fixture(out_dir, spec: dict, rng) -> None:
    from medbridge.data.vqa.fixtures import mcq_question, signal_image

    rows = []
    for i in range(spec["n_rows"] * len(DATASET_NAMES) // 2):
        name = DATASET_NAMES[i % len(DATASET_NAMES)]
        _, q, opts, ans = mcq_question(rng, i)
        if name.endswith("_closed"):  # closed questions: MedVLThinker's LLM-written options, often yes/no
            opts, ans = ["yes", "no"], int(rng.integers(0, 2))
        options = {"ABCD"[j]: o for j, o in enumerate(opts)}
        letter = "ABCD"[ans]
        misc = json.dumps({"id": f"validation_x_{i}", "img_type": "['CT Scans']"}) if name == "MMMU-medical" else None
        rows.append(
            {
                "images": [signal_image(ans, len(opts), spec["image_size"], rng)],
                "question": q,
                "options": json.dumps(options),
                "answer_label": letter,
                "answer": options[letter],
                "dataset_name": name,
                "hash": None,
                "dataset_index": i,
                "misc": misc,
            }
        )
    write_rows(out_dir, "default", "test", rows)


ADAPTER = Adapter(
    name="medvlthinker_eval",
    kind="consolidated",
    hub={"id": "UCSC-VLAA/MedVLThinker-Eval", "configs": [None], "splits": ["test"]},
    convert=convert,
    images=images,
    fixture=fixture,
    image_columns=("images",),
    item_id=item_id,
)
