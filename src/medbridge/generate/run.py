"""Run a model over its eval sets and keep every answer: one model load for all of them, resumable shards, then one
generations JSONL per eval set.

Each shard (`evaluate.shard_size` items) is written atomically under the eval set's shard folder with a key of
everything that made it (the model's files or hub snapshot, seed, backend, device, sampling settings; the items and
prompts are checked row by row). A rerun after a crash or kill reuses shards whose key and rows match, so only
unfinished work is redone; shards made by another model, seed or settings are discarded, never served.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from medbridge.data.mcq import check_items
from medbridge.fingerprint import model_fingerprint
from medbridge.generate import SamplingSettings, get_backend
from medbridge.generate.chat import prompt_hash
from medbridge.io import read_jsonl, write_json, write_jsonl
from medbridge.models.registry import resolve
from medbridge.prompts import prompt_text
from medbridge.score.extract import extract_choice


@dataclass(frozen=True)
class EvalJob:
    """One eval set of a generation run: its items, its generations file, samples per item (None: evaluate.n_samples)."""

    items: str
    out: str
    n_samples: int | None = None


def parsed(text: str, options: dict, answer: str, answer_tag: str) -> dict:
    choice, method = extract_choice(text, list(options), answer_tag)
    return {"text": text, "choice": choice, "method": method, "correct": choice == answer}


def record(item: dict, completion, settings: SamplingSettings, answer_tag: str = "first") -> dict:
    """One generations row: everything needed to recount a metric by hand (`answer_tag`: evaluate.answer_tag)."""
    return reparse({
        "id": item["id"],
        "source": item.get("source"),
        "modality": item.get("modality"),
        "answer": item["answer"],
        "options": item["options"],
        "prompt_hash": prompt_hash(prompt_text(item, settings.prompt)),
        "greedy": {"text": completion.greedy},
        "samples": [{"text": t} for t in completion.samples],
        "settings": asdict(settings),
    }, answer_tag)


def reparse(row: dict, answer_tag: str) -> dict:
    """The row with every text's choice extracted under `answer_tag`: extraction is redone whenever a generations
    file is assembled, so changing how answers are read never needs the texts generated again."""
    opts, ans = row["options"], row["answer"]
    return row | {"greedy": parsed(row["greedy"]["text"], opts, ans, answer_tag),
                  "samples": [parsed(s["text"], opts, ans, answer_tag) for s in row["samples"]], "answer_tag": answer_tag}  # fmt: skip


def shard_key(cfg: dict, model: dict, settings: SamplingSettings, device: str) -> dict:
    """Everything a shard's texts depend on besides its items and prompts (those are checked per row); `model`: the
    model's fingerprint (medbridge.fingerprint)."""
    ev = cfg["evaluate"]
    return {
        "model": model,
        "seed": cfg["seed"],
        "backend": ev["backend"],
        "device": "cpu" if device == "cpu" else "gpu",
        "settings": asdict(settings),
        "pixels": {k: ev.get(k) for k in ("min_pixels", "max_pixels")},
        "batch_size": ev.get("batch_size", 8) if ev["backend"] == "hf" else None,  # HF samples are seeded per batch
    }


def shard_dir(out_path: str, shard_root: str | None) -> Path:
    """Where an eval set's shards live: `<shard_root>/<eval set>/`, else `<out>.shards/`. The DAG keeps them outside
    the model's generations folder, which Snakemake removes before it reruns the job."""
    return Path(shard_root) / Path(out_path).stem if shard_root else Path(f"{out_path}.shards")


def open_shard_dir(path: Path, key: dict) -> None:
    """Keep the folder's shards only if they were made under `key`; else start it afresh with the key."""
    key_file = path / "key.json"
    if path.exists():
        try:
            same = json.loads(key_file.read_text()) == json.loads(json.dumps(key))
        except (OSError, json.JSONDecodeError):
            same = False
        if not same:
            print(f"{path}: shards were made by another model, seed or settings; discarded", flush=True)
            shutil.rmtree(path)
    for stale in path.glob(".*.tmp") if path.exists() else []:  # a SIGKILLed attempt cannot clean up its temp file
        stale.unlink()
    if not key_file.exists():
        write_json(key_file, key)


def _shard_ok(path: Path, shard: list[dict], settings: SamplingSettings) -> bool:
    if not path.exists():
        return False
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError:
        return False
    want = [(it["id"], prompt_hash(prompt_text(it, settings.prompt))) for it in shard]
    return [(r["id"], r["prompt_hash"]) for r in rows] == want and all(r["settings"] == asdict(settings) for r in rows)


def run_generation(cfg: dict, model_name: str, jobs: list[EvalJob], device: str = "cpu",
                   shard_root: str | None = None) -> dict[str, int]:  # fmt: skip
    """Generate every eval set of `jobs` with one backend (loaded once, and only if some shard is left to do).
    Returns rows written per generations file."""
    backend, written = None, {}
    shard_size = cfg["evaluate"].get("shard_size", 256)
    answer_tag = cfg["evaluate"].get("answer_tag", "first")
    model = model_fingerprint(resolve(cfg, model_name))  # once for every eval set of the job
    for job in jobs:
        items = check_items(read_jsonl(job.items), job.items)
        settings = SamplingSettings.from_config(cfg, job.n_samples)
        folder = shard_dir(job.out, shard_root)
        open_shard_dir(folder, shard_key(cfg, model, settings, device))
        shards = [items[i : i + shard_size] for i in range(0, len(items), shard_size)]
        for s, shard in enumerate(shards):
            path = folder / f"shard-{s:05d}.jsonl"
            if _shard_ok(path, shard, settings):
                continue
            if backend is None:
                backend = get_backend(cfg["evaluate"]["backend"])(cfg, model_name, device)
            completions = backend.generate(shard, settings, cfg["seed"])
            write_jsonl(path, (record(it, c, settings, answer_tag) for it, c in zip(shard, completions)))
        rows = [reparse(r, answer_tag) for s in range(len(shards)) for r in read_jsonl(folder / f"shard-{s:05d}.jsonl")]
        written[job.out] = write_jsonl(job.out, rows)
    return written


def seeding(cfg: dict, device: str) -> str:
    """How sampled texts are seeded by the configured backend on `device` (recorded in each file's sidecar)."""
    if cfg["evaluate"]["backend"] == "hf":
        return "per-batch"
    return "engine" if device == "cpu" else "per-request"
