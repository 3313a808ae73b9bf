"""The PMC-VQA training pool of Section 4: UCSC-VLAA/MedVLThinker-pmc_vqa (split train; ~177k rows).

Built by MedVLThinker from PMC-VQA's train.csv (choices with their "A:" prefixes stripped, rows whose answer did not
match its choice dropped). Same row shape as MedVLThinker-Eval (medvlthinker.py): `images`, `question`, `options`
(JSON string), `answer_label`, `answer`, `dataset_name` ("pmc_vqa"), `hash`, `dataset_index`. The modality labeller
(medbridge.data.pmc) reads these rows, the balanced draw turns the chosen ones into training items.
"""

from __future__ import annotations

import json

from medbridge.data.vqa import medvlthinker
from medbridge.data.vqa.base import Adapter


def item_id(row: dict, split: str, index: int) -> str | None:
    return None if row.get("dataset_index") is None else f"pmc_vqa_train-{row['dataset_index']}"


def fixture(out_dir, spec: dict, rng) -> None:
    """A pool spread over the labeller's modalities (one phrase per scene), the image stripes encoding it."""
    from medbridge.data.vqa.fixtures import SCENES, mcq_question, signal_image

    rows = []
    for i in range(spec["n_train"]):
        _, q, opts, ans = mcq_question(rng, i)
        options = {"ABCD"[j]: o for j, o in enumerate(opts)}
        img = signal_image(ans, 4, spec["image_size"], rng, pattern=1 + i % len(SCENES))
        rows.append(
            {
                "images": [img],
                "question": q,
                "options": json.dumps(options),
                "answer_label": "ABCD"[ans],
                "answer": options["ABCD"[ans]],
                "dataset_name": "pmc_vqa",
                "hash": None,
                "dataset_index": i,
            }
        )
    medvlthinker.write_rows(out_dir, "default", "train", rows)


ADAPTER = Adapter(
    name="pmc_vqa_train",
    kind="train",
    hub={"id": "UCSC-VLAA/MedVLThinker-pmc_vqa", "configs": [None], "splits": ["train"]},
    convert=medvlthinker.convert,
    images=medvlthinker.images,
    fixture=fixture,
    image_columns=("images",),
    item_id=item_id,
)
