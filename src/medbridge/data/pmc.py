"""Section 4's RL training set: PMC-VQA training questions labelled by imaging modality, then a seeded
modality-balanced draw (8,000 questions in the paper), saved as MCQ training items.

Labellers (`vqa.pmc.labeller`):
  vlm      the paper's: a VLM (model role `vqa.pmc.judge`, Qwen2.5-VL-32B-Instruct) sees the image and the
           question and names one category; greedy decoding through the configured generation backend (vLLM on
           the paper's GPUs, `evaluate.judge_tensor_parallel_size`), one model load for the whole pool. Images at
           the labeller's own pixel bounds (`vqa.pmc.min_pixels`/`max_pixels`: naming a modality needs no
           evaluation-size image). Resumable like `generate`: `vqa.pmc.shard_size` questions per shard, written
           atomically with a key of everything that made it (model files, backend, device, pixel bounds, prompt,
           categories, source); a rerun after a time limit reuses the shards whose key and question ids match.
  keyword  the tiny profile's documented stand-in: the first category (in KEYWORDS order) whose pattern occurs in
           the question, options or answer; none if no pattern does. Text-only, so it cannot see the image.
The labels file keeps every labelled question (id, label, raw answer); the balanced subset keeps the draw.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter

import numpy as np

from medbridge import MedbridgeError

# What each category means, for the VLM's prompt (the paper lists MRI, CT, ultrasound, X-ray, microscopy,
# dermatology, OCT, "...", none; the config's `categories` picks which of these are offered).
HINTS = {
    "MRI": "magnetic resonance imaging",
    "CT": "computed tomography",
    "ultrasound": "ultrasound or echography",
    "X-ray": "radiograph, mammogram, fluoroscopy or angiography",
    "microscopy": "histology, cytology or microscopy",
    "dermatology": "clinical or dermoscopic photograph of skin",
    "OCT": "optical coherence tomography",
    "fundus": "retinal fundus photograph",
    "PET": "PET, SPECT or other nuclear medicine imaging",
    "endoscopy": "endoscopic or laparoscopic view",
    "none": "none of these (e.g. a chart, diagram or table)",
}
# Keyword stand-in, in priority order: more specific modalities first ("PET/CT" is PET, "OCT" is not CT).
KEYWORDS = {
    "OCT": r"\bOCT\b|optical coherence",
    "fundus": r"\bfundus\b|fundoscop|retinal photograph",
    "PET": r"\bPET\b|\bSPECT\b|scintigra|nuclear medicine",
    "MRI": r"\bMRI?\b|magnetic resonance|\bT[12][- ]?weighted|\bFLAIR\b|diffusion[- ]weighted",
    "CT": r"\bCT\b|\bCTA\b|computed tomograph",
    "ultrasound": r"ultrasound|ultrasonograph|sonograph|echocardiogra|doppler",
    "X-ray": r"x-?ray|radiograph|mammogra|fluoroscop|angiogra",
    "endoscopy": r"endoscop|colonoscop|laparoscop|bronchoscop|gastroscop",
    "dermatology": r"dermoscop|dermatoscop|\bskin\b|\brash\b|dermat",
    "microscopy": r"microscop|micrograph|histolog|histopatholog|\bH&E\b|hematoxylin|immunohistochem|cytolog|stain",
}


def check_categories(pmc: dict) -> None:
    cats = pmc.get("categories", [])
    if cats and "none" not in cats:
        raise MedbridgeError("vqa.pmc.categories must include 'none' (questions with no imaging modality)")
    if len(set(cats)) != len(cats):
        raise MedbridgeError(f"vqa.pmc.categories lists a category twice: {cats}")
    unknown = [c for c in cats if c not in HINTS]
    if unknown:
        raise MedbridgeError(
            f"vqa.pmc.categories has unknown {unknown}; known: {list(HINTS)} (add a HINTS and "
            "KEYWORDS entry in medbridge/data/pmc.py for a new one)"
        )
    bad = [c for c in pmc["exclude"] if c not in cats]
    if bad:
        raise MedbridgeError(f"vqa.pmc.exclude names {bad}, which are not in vqa.pmc.categories {cats}")


def keyword_label(text: str, categories: list[str]) -> tuple[str, str]:
    """(category, the matched words) of the first KEYWORDS pattern found in `text`; ('none', '') if none is."""
    for cat, pattern in KEYWORDS.items():
        if cat in categories:
            m = re.search(pattern, text, flags=re.IGNORECASE)
            if m:
                return cat, m.group(0)
    return "none", ""


def vlm_prompt(question: str, categories: list[str]) -> str:
    listing = "\n".join(f"- {c}: {HINTS[c]}" for c in categories)
    return (
        f'This image comes with the question: "{question}"\n'
        f"Which imaging modality produced the image? Choose exactly one category:\n{listing}\n"
        "Answer with the category name only."
    )


def parse_label(text: str, categories: list[str]) -> str | None:
    """The category named first in a VLM answer (case-insensitive, whole word); None if it names none."""
    hits = []
    for cat in categories:
        m = re.search(rf"(?<![\w-]){re.escape(cat)}(?![\w-])", text, flags=re.IGNORECASE)
        if m:
            hits.append((m.start(), -len(cat), cat))
    return min(hits)[2] if hits else None


def label_pool(cfg: dict, source_dir=None, shard_root=None) -> tuple[list[dict], dict]:
    """Label every usable PMC-VQA training question (or a seeded pool of `pool_size`): (rows, summary). The VLM
    labeller keeps its shards under `shard_root` (default: none kept, a crash starts over)."""
    from medbridge.data.vqa.build import draw, open_source, text_pass

    pmc = cfg["vqa"]["pmc"]
    cats = pmc["categories"]
    src = open_source(cfg, "pmc_vqa_train", source_dir)
    tp = text_pass(src)
    pool = draw(tp.candidates, pmc.get("pool_size"), cfg["seed"], "pmc_vqa_train-pool")
    if pmc["labeller"] == "keyword":
        rows = []
        for c in pool:
            f = c.fields
            label, raw = keyword_label(" ".join([f["question"], *f["options"].values()]), cats)
            rows.append({"id": c.id, "table": c.table, "index": c.index, "label": label, "raw": raw, "parsed": True})
        judge, shards = None, None
    else:
        rows, judge, shards = _vlm_label(cfg, src, pool, cats, shard_root)
    counts = Counter(r["label"] for r in rows)
    summary = {
        "source": src.where,
        "labeller": pmc["labeller"],
        "judge": judge,
        "n_rows": tp.n_rows,
        "n_usable": len(tp.candidates),
        "n_labelled": len(rows),
        "pool_size": pmc.get("pool_size"),
        "counts": {c: counts.get(c, 0) for c in cats},
        "n_unparsed": sum(not r["parsed"] for r in rows),
        "shards": shards,
        "skipped": {r: {"count": len(ids), "ids": ids} for r, ids in sorted(tp.skipped.items())},
    }
    return rows, summary


def labeller_config(cfg: dict) -> dict:
    """The config the labeller's backend reads: the evaluation's, with the labeller's own pixel bounds where
    `vqa.pmc` sets any (a bound it leaves out is the processor's own)."""
    import copy

    pmc = cfg["vqa"]["pmc"]
    if not {"min_pixels", "max_pixels"} & set(pmc):
        return cfg
    out = copy.deepcopy(cfg)
    for k in ("min_pixels", "max_pixels"):
        out["evaluate"].pop(k, None)
        if k in pmc:
            out["evaluate"][k] = pmc[k]
    return out


def label_key(cfg: dict, src, cats: list[str], device: str) -> dict:
    """Everything a shard of labels depends on besides its question ids (checked per shard)."""
    from medbridge.fingerprint import model_fingerprint
    from medbridge.models.registry import resolve

    pmc, ev = cfg["vqa"]["pmc"], labeller_config(cfg)["evaluate"]
    return {
        "model": model_fingerprint(resolve(cfg, pmc["judge"])),
        "backend": ev["backend"],
        "device": "cpu" if device == "cpu" else "gpu",
        "pixels": {k: ev.get(k) for k in ("min_pixels", "max_pixels")},
        "max_new_tokens": pmc["max_new_tokens"],
        "prompt": vlm_prompt("{question}", cats),
        "categories": cats,
        "source": src.where,
    }


def _vlm_label(cfg: dict, src, pool: list, cats: list[str], shard_root=None) -> tuple[list[dict], str, dict]:
    import contextlib
    import tempfile
    from pathlib import Path

    from tqdm import tqdm

    from medbridge.generate import default_device
    from medbridge.generate.run import open_shard_dir
    from medbridge.io import read_jsonl, write_jsonl
    from medbridge.score.judge import judge_backend

    pmc = cfg["vqa"]["pmc"]
    bs, size = pmc["batch_size"], pmc["shard_size"]
    key = label_key(cfg, src, cats, default_device())
    backend, reused, shards = None, 0, [pool[i : i + size] for i in range(0, len(pool), size)]
    with contextlib.nullcontext(shard_root) if shard_root else tempfile.TemporaryDirectory() as root:
        folder = Path(root)
        open_shard_dir(folder, key)
        for n, shard in enumerate(tqdm(shards, desc="label modality (shards)")):
            path = folder / f"shard-{n:05d}.jsonl"
            if path.exists() and [r["id"] for r in read_jsonl(path)] == [c.id for c in shard]:
                reused += 1  # labelled by an earlier attempt under the same key
                continue
            if backend is None:  # vLLM on the paper's GPUs: one engine, big batches; loaded only if work is left
                backend = judge_backend(labeller_config(cfg), pmc["judge"], "label")
            rows = []
            for s in range(0, len(shard), bs):
                batch = shard[s : s + bs]
                images = [src.adapter.images(src.tables[c.table].ds[c.index], src.ctx) for c in batch]
                prompts = [vlm_prompt(c.fields["question"], cats) for c in batch]
                answers = backend.complete(images, prompts, pmc["max_new_tokens"])
                for c, text in zip(batch, answers):
                    label = parse_label(text, cats)
                    # An answer naming no category counts as none, flagged (parsed: false) and counted.
                    rows.append(
                        {
                            "id": c.id,
                            "table": c.table,
                            "index": c.index,
                            "label": label or "none",
                            "raw": text,
                            "parsed": label is not None,
                        }
                    )
            write_jsonl(path, rows)  # atomic: a killed attempt leaves whole shards only
        rows = [r for n in range(len(shards)) for r in read_jsonl(folder / f"shard-{n:05d}.jsonl")]
    return (
        rows,
        key["model"]["path"],
        {"folder": str(shard_root) if shard_root else None, "n": len(shards), "reused": reused, "shard_size": size},
    )


def quotas(available: dict[str, int], size: int, rng: np.random.Generator) -> dict[str, int]:
    """Per-category counts summing to `size`, as equal as the available counts allow (water-filling): a category
    with fewer than its share gives all it has and the rest is shared evenly; leftover units go to a seeded choice.
    """
    total = sum(available.values())
    if total < size:
        raise MedbridgeError(
            f"only {total} labelled questions {available} for a balanced subset of {size}; lower "
            "vqa.pmc.subset_size, label a larger pool (vqa.pmc.pool_size) or exclude fewer "
            "categories"
        )
    quota = dict.fromkeys(available, 0)
    open_ = [c for c in available if available[c] > 0]
    remaining = size
    while remaining > 0:
        share, extra = divmod(remaining, len(open_))
        full = [c for c in open_ if available[c] - quota[c] <= share]
        if full and share > 0:
            for c in full:
                remaining -= available[c] - quota[c]
                quota[c] = available[c]
            open_ = [c for c in open_ if c not in full]
            continue
        for c in open_:
            quota[c] += share
        for i in rng.choice(len(open_), size=extra, replace=False):
            quota[open_[i]] += 1
        remaining = 0
    return quota


def balanced_draw(rows: list[dict], categories: list[str], size: int, seed: int) -> tuple[list[dict], dict]:
    """The seeded modality-balanced subset of labelled rows (in label-file order) and {category: (available, drawn)}."""
    rng = np.random.default_rng([seed, zlib.crc32(b"pmc_vqa_balanced")])
    groups = {c: [r for r in rows if r["label"] == c] for c in categories}
    q = quotas({c: len(g) for c, g in groups.items()}, size, rng)
    chosen = []
    for c in categories:
        if q[c]:
            chosen += [groups[c][i] for i in rng.choice(len(groups[c]), size=q[c], replace=False)]
    order = {r["id"]: i for i, r in enumerate(rows)}
    chosen.sort(key=lambda r: order[r["id"]])
    return chosen, {c: {"available": len(groups[c]), "drawn": q[c]} for c in categories}


def build_balanced(cfg: dict, labels: list[dict], out_items, images_dir, source_dir=None) -> dict:
    """The `pmc-balance` step: draw, re-read the drawn rows from the source, write items + images; the summary."""
    from medbridge.data.vqa.build import Candidate, materialize, open_source
    from medbridge.io import write_jsonl

    pmc = cfg["vqa"]["pmc"]
    include = [c for c in pmc["categories"] if c not in pmc["exclude"]]
    chosen, counts = balanced_draw(labels, include, pmc["subset_size"], cfg["seed"])
    src = open_source(cfg, "pmc_vqa_train", source_dir)
    candidates = []
    for r in chosen:
        table = src.tables[r["table"]]
        row = table.ds[r["index"]]
        rid = src.adapter.item_id(row, table.split, r["index"])
        if rid is not None and rid != r["id"]:
            raise MedbridgeError(
                f"labels file row {r['id']} no longer matches the source (found {rid} there); the "
                "source changed since labelling: rerun pmc_label"
            )
        fields = {**src.adapter.convert(row, src.ctx), "modality": r["label"]}
        candidates.append(Candidate(r["table"], r["index"], r["id"], fields))
    items, late = materialize(src, candidates, images_dir, extra={"labeller": pmc["labeller"]})
    if late:
        raise MedbridgeError(
            f"{sum(map(len, late.values()))} drawn questions have no usable image ({dict(late)}); "
            "the pool's rows must carry images"
        )
    write_jsonl(out_items, items)
    return {
        "subset_size": pmc["subset_size"],
        "categories": counts,
        "excluded": pmc["exclude"],
        "seed": cfg["seed"],
        "source": src.where,
        "n_items": len(items),
    }
