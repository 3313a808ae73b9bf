"""PMC-VQA test set as served by AdaptLLM/biomed-VQA-benchmark (config PMC-VQA, split test; 2,000 rows).

Raw shape (the columns MedVLThinker's eval-set builder reads; others, if any, were not confirmed): `image` (Image),
`input` ("Question: <q>\\nThe choices are:\\n(A) ..."), `A`..`D` (option texts), `label` (answer letter).
The question is `input` without the "Question: " lead and the choices block (the prompt lists the options itself).
"""

from __future__ import annotations

from medbridge.data.vqa.base import Adapter, Context, Skip, answer_letter, image_list, mcq_fields, parse_options


def convert(row: dict, ctx: Context) -> dict:
    question = str(row.get("input") or "")
    if question.startswith("Question: "):
        question = question[len("Question: ") :]
    question = question.split("\nThe choices are:")[0]
    try:
        options = parse_options({k: row.get(k) for k in "ABCD"})
    except Skip as e:
        raise Skip(f"options A-D: {e}") from e
    return mcq_fields(question, options, answer_letter(row.get("label"), options), None, {})


def images(row: dict, ctx: Context) -> list:
    return image_list(row.get("image"))


def fixture(out_dir, spec: dict, rng) -> None:
    from datasets import Features, Image, Value

    from medbridge.data.vqa.fixtures import mcq_question, save_splits, signal_image

    n, size = spec["n_rows"], spec["image_size"]
    cols = {k: [] for k in ("image", "input", "A", "B", "C", "D", "label")}
    for i in range(n):
        _, q, opts, ans = mcq_question(rng, i)
        if i == n - 1:
            opts[2] = ""  # one malformed row: an empty option must be skipped, not kept
        cols["image"].append(signal_image(ans, 4, size, rng))
        choices = "\n".join(f"({letter}) {o}" for letter, o in zip("ABCD", opts))
        cols["input"].append(f"Question: {q}\nThe choices are:\n{choices}")
        for letter, o in zip("ABCD", opts):
            cols[letter].append(o)
        cols["label"].append("ABCD"[ans])
    features = Features({"image": Image(), **{k: Value("string") for k in ("input", "A", "B", "C", "D", "label")}})
    save_splits(out_dir, "PMC-VQA", {"test": cols}, features)


ADAPTER = Adapter(
    name="pmc_vqa",
    kind="benchmark",
    hub={"id": "AdaptLLM/biomed-VQA-benchmark", "configs": ["PMC-VQA"], "splits": ["test"]},
    convert=convert,
    images=images,
    fixture=fixture,
    image_columns=("image",),
    consolidated_name="pmc_vqa",
)
