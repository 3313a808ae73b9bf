"""Run a model over an item set and keep every answer: resumable shards, then one generations JSONL.

Each shard (`evaluate.shard_size` items) is written atomically under `<out>.shards/`; a rerun after a crash or
kill skips shards that are complete and match the current items and settings, so only unfinished work is redone.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from medbridge.data.mcq import check_items
from medbridge.generate import SamplingSettings, get_backend
from medbridge.generate.chat import prompt_hash
from medbridge.io import read_jsonl, write_jsonl
from medbridge.prompts import prompt_text
from medbridge.score.extract import extract_choice


def record(item: dict, completion, settings: SamplingSettings, answer_tag: str = "first") -> dict:
    """One generations row: everything needed to recount a metric by hand (`answer_tag`: evaluate.answer_tag)."""
    letters = list(item["options"])

    def parsed(text: str) -> dict:
        choice, method = extract_choice(text, letters, answer_tag)
        return {"text": text, "choice": choice, "method": method, "correct": choice == item["answer"]}

    return {
        "id": item["id"],
        "source": item.get("source"),
        "modality": item.get("modality"),
        "answer": item["answer"],
        "options": item["options"],
        "prompt_hash": prompt_hash(prompt_text(item, settings.prompt)),
        "greedy": parsed(completion.greedy),
        "samples": [parsed(t) for t in completion.samples],
        "settings": asdict(settings),
        "answer_tag": answer_tag,
    }


def _shard_ok(path: Path, ids: list[str], settings: SamplingSettings, answer_tag: str = "first") -> bool:
    if not path.exists():
        return False
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError:
        return False
    return [r["id"] for r in rows] == ids and all(
        r["settings"] == asdict(settings) and r.get("answer_tag", "first") == answer_tag for r in rows
    )


def run_generation(cfg: dict, model_name: str, items_path: str, out_path: str, device: str = "cpu",
                   n_samples: int | None = None) -> int:  # fmt: skip
    items = check_items(read_jsonl(items_path), items_path)
    settings = SamplingSettings.from_config(cfg, n_samples)
    shard_size = cfg["evaluate"].get("shard_size", 256)
    answer_tag = cfg["evaluate"].get("answer_tag", "first")
    shard_dir = Path(f"{out_path}.shards")
    for stale in shard_dir.glob(".*.tmp"):  # a SIGKILLed attempt cannot clean up its temp file
        stale.unlink()
    shards = [items[i : i + shard_size] for i in range(0, len(items), shard_size)]
    backend = None
    for s, shard in enumerate(shards):
        path = shard_dir / f"shard-{s:05d}.jsonl"
        if _shard_ok(path, [it["id"] for it in shard], settings, answer_tag):
            continue
        if backend is None:  # load the model only if some shard is left to do
            backend = get_backend(cfg["evaluate"]["backend"])(cfg, model_name, device)
        completions = backend.generate(shard, settings, cfg["seed"])
        write_jsonl(path, (record(it, c, settings, answer_tag) for it, c in zip(shard, completions)))
    rows = [r for s in range(len(shards)) for r in read_jsonl(shard_dir / f"shard-{s:05d}.jsonl")]
    return write_jsonl(out_path, rows)
