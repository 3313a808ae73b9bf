"""The free-text VQA benchmarks of AdaptLLM/biomed-VQA-benchmark (PathVQA, SLAKE, VQA_RAD), closed questions only.

Raw shape (the columns MedVLThinker's builder reads; others were not confirmed): `image` (Image), `input` (the
question), `label` (the free-text answer), `answer_type` ("CLOSED" | "OPEN"). As in the paper (and MedVLThinker),
only closed questions are kept; each becomes a 2-option MCQ by `base.closed_mcq` (yes/no, or the two alternatives
the question names). MedVLThinker instead asked an LLM to write options for closed questions; `vqa.source:
medvlthinker` reads those option sets from UCSC-VLAA/MedVLThinker-Eval.
"""

from __future__ import annotations

from functools import partial

from medbridge.data.vqa.base import Adapter, Context, Skip, closed_mcq, image_list, mcq_fields


def convert(row: dict, ctx: Context, modality: str | None) -> dict:
    kind = str(row.get("answer_type") or "").strip().upper()
    if kind != "CLOSED":
        raise Skip(f"answer_type {kind or 'missing'!r}: only closed questions are evaluated")
    question = str(row.get("input") or "")
    if question.startswith("Question: "):
        question = question[len("Question: ") :]
    options, answer = closed_mcq(question, str(row.get("label") or ""))
    return mcq_fields(question, options, answer, modality, {"answer_type": kind})


def images(row: dict, ctx: Context) -> list:
    return image_list(row.get("image"))


def fixture(out_dir, spec: dict, rng, config: str, scene: str) -> None:
    from datasets import Features, Image, Value

    from medbridge.data.vqa.fixtures import closed_rows, save_splits

    rows = closed_rows(rng, spec["n_rows"], spec["image_size"], scene)
    cols = {k: [r[k] for r in rows] for k in ("image", "input", "label", "answer_type")}
    features = Features(
        {"image": Image(), "input": Value("string"), "label": Value("string"), "answer_type": Value("string")}
    )
    save_splits(out_dir, config, {"test": cols}, features)


def closed_adapter(name: str, config: str, consolidated_name: str, modality: str, scene: str) -> Adapter:
    return Adapter(
        name=name,
        kind="benchmark",
        hub={"id": "AdaptLLM/biomed-VQA-benchmark", "configs": [config], "splits": ["test"]},
        convert=partial(convert, modality=modality),
        images=images,
        fixture=partial(fixture, config=config, scene=scene),
        image_columns=("image",),
        consolidated_name=consolidated_name,
        modality=modality,
    )
