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

from medbridge import MedbridgeError
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
    """One eval set of a generation run: its items, its generations file, samples per item (None: the config's
    evaluate.n_samples)."""

    items: str
    out: str
    n_samples: int | None = None


def parsed(text: str, options: dict, answer: str, answer_tag: str) -> dict:
    choice, method = extract_choice(text, list(options), answer_tag)
    return {"text": text, "choice": choice, "method": method, "correct": choice == answer}


def record(item: dict, completion, settings: SamplingSettings, answer_tag: str = "first") -> dict:
    """One generations row: everything needed to recount a metric by hand (`answer_tag`: evaluate.answer_tag)."""
    return reparse(
        {
            "id": item["id"],
            "source": item.get("source"),
            "modality": item.get("modality"),
            "answer": item["answer"],
            "options": item["options"],
            "prompt_hash": prompt_hash(prompt_text(item, settings.prompt)),
            "greedy": {"text": completion.greedy},
            "samples": [{"text": t} for t in completion.samples],
            "settings": asdict(settings),
        },
        answer_tag,
    )


def reparse(row: dict, answer_tag: str) -> dict:
    """The row with every text's choice extracted under `answer_tag`: extraction is redone whenever a generations
    file is assembled, so changing how answers are read never needs the texts generated again."""
    opts, ans = row["options"], row["answer"]
    return row | {
        "greedy": parsed(row["greedy"]["text"], opts, ans, answer_tag),
        "samples": [parsed(s["text"], opts, ans, answer_tag) for s in row["samples"]],
        "answer_tag": answer_tag,
    }


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
        "batch_size": ev["batch_size"] if ev["backend"] == "hf" else None,  # HF samples are seeded per batch
    }


def shard_dir(out_path: str, shard_root: str | None) -> Path:
    """Where an eval set's shards live: `<shard_root>/<eval set>/`, else `<out>.shards/`. The DAG keeps them outside
    the model's generations folder, which Snakemake removes before it reruns the job."""
    return Path(shard_root) / Path(out_path).stem if shard_root else Path(f"{out_path}.shards")


@dataclass(frozen=True)
class Part:
    """Part `index` of `count` (1-based, written `2-of-8`) of a model's generation: the shards whose position in the
    run's order (eval sets in order, shards in order) is index - 1 modulo count, so every part gets a share of every
    eval set and the parts finish together. Several part jobs generate one model at once (one GPU each)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Part:
        try:
            index, count = (int(x) for x in text.split("-of-"))
        except ValueError:
            index = count = 0
        if not 1 <= index <= count:
            raise MedbridgeError(f"part {text!r} is not <i>-of-<n> with 1 <= i <= n (e.g. 2-of-8)")
        return cls(index, count)

    def owns(self, position: int) -> bool:
        return position % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}-of-{self.count}"


@dataclass(frozen=True)
class Shard:
    """One resumable unit of work: `items` of one eval set, kept in `path`."""

    job: EvalJob
    settings: SamplingSettings
    path: Path
    items: list[dict]


def plan_shards(cfg: dict, jobs: list[EvalJob], shard_root: str | None) -> list[Shard]:
    """Every shard of the run, in order: the eval sets of `jobs` in order, each cut into `evaluate.shard_size` items."""
    size = cfg["evaluate"]["shard_size"]
    shards = []
    for job in jobs:
        items = check_items(read_jsonl(job.items), job.items)
        settings = SamplingSettings.from_config(cfg, job.n_samples)
        folder = shard_dir(job.out, shard_root)
        shards += [
            Shard(job, settings, folder / f"shard-{s // size:05d}.jsonl", items[s : s + size])
            for s in range(0, len(items), size)
        ]
    return shards


def open_shard_dir(path: Path, key: dict, own: list[Path] | None = None) -> None:
    """Keep the folder's shards only if they were made under `key`; else start it afresh with the key. Part jobs of
    one model open the same folders at once: a lock beside the folder makes the check-and-reset happen once, and
    each removes only its own shards' temp files (`own`; None: every one, for a job that owns the folder)."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        key_file = path / "key.json"
        if path.exists():
            try:
                same = json.loads(key_file.read_text()) == json.loads(json.dumps(key))
            except (OSError, json.JSONDecodeError):
                same = False
            if not same:
                print(f"{path}: shards were made by another model, seed or settings; discarded", flush=True)
                shutil.rmtree(path)
        if not key_file.exists():
            write_json(key_file, key)
    # a SIGKILLed attempt cannot clean up its temp files (io.atomic_path names them .<file>.<random>.tmp)
    for pattern in [f".{p.name}.*tmp" for p in own] if own is not None else [".*.tmp"]:
        for stale in path.glob(pattern):
            stale.unlink(missing_ok=True)


def _shard_ok(path: Path, shard: list[dict], settings: SamplingSettings) -> bool:
    if not path.exists():
        return False
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError:
        return False
    want = [(it["id"], prompt_hash(prompt_text(it, settings.prompt))) for it in shard]
    return [(r["id"], r["prompt_hash"]) for r in rows] == want and all(r["settings"] == asdict(settings) for r in rows)


def generate_shards(
    cfg: dict,
    model_name: str,
    jobs: list[EvalJob],
    device: str = "cpu",
    shard_root: str | None = None,
    part: Part | None = None,
) -> list[Shard]:
    """Generate the shards of `part` (None: all) that are not done yet, with one backend loaded once and only if
    some shard is left to do. Returns the part's shards."""
    model = model_fingerprint(resolve(cfg, model_name))  # once for every eval set of the job
    answer_tag = cfg["evaluate"]["answer_tag"]
    every = plan_shards(cfg, jobs, shard_root)
    shards = [s for i, s in enumerate(every) if part is None or part.owns(i)]
    for folder, settings in dict.fromkeys((s.path.parent, s.settings) for s in every):
        own = None if part is None else [s.path for s in shards if s.path.parent == folder]
        open_shard_dir(folder, shard_key(cfg, model, settings, device), own)
    backend = None
    for shard in shards:
        if _shard_ok(shard.path, shard.items, shard.settings):
            continue
        if backend is None:
            backend = get_backend(cfg["evaluate"]["backend"])(cfg, model_name, device)
        completions = backend.generate(shard.items, shard.settings, cfg["seed"])
        write_jsonl(shard.path, (record(it, c, shard.settings, answer_tag) for it, c in zip(shard.items, completions)))
    return shards


def shard_device(cfg: dict, model_name: str, jobs: list[EvalJob], shard_root: str | None) -> str:
    """The device ("cpu" or "gpu") the shards of a run were made on, as their key records it: what an assembling
    job, which generates nothing, reports in its files' sidecars."""
    keys = {
        json.dumps(json.loads((s.path.parent / "key.json").read_text())["device"])
        for s in plan_shards(cfg, jobs, shard_root)
        if (s.path.parent / "key.json").exists()
    }
    return json.loads(keys.pop()) if len(keys) == 1 else "cpu"


def assemble(
    cfg: dict, model_name: str, jobs: list[EvalJob], shard_root: str | None, device: str, parts: int | None = None
) -> dict[str, int]:
    """Write one generations file per eval set from its shards, the answers re-read under `evaluate.answer_tag`.
    Every shard must be done and made under the current key (model, seed, settings, `device`); otherwise nothing is
    written and the error names the missing shards (and, with `parts`, the part jobs that make them). Returns rows
    written per generations file."""
    model = model_fingerprint(resolve(cfg, model_name))
    answer_tag = cfg["evaluate"]["answer_tag"]
    shards = plan_shards(cfg, jobs, shard_root)
    missing = []
    for i, s in enumerate(shards):
        key_file = s.path.parent / "key.json"
        keyed = key_file.exists() and json.loads(key_file.read_text()) == json.loads(
            json.dumps(shard_key(cfg, model, s.settings, device))
        )
        if not (keyed and _shard_ok(s.path, s.items, s.settings)):
            missing.append(f"{s.path}" + (f" (part {Part(i % parts + 1, parts)})" if parts else ""))
    if missing:
        raise MedbridgeError(
            f"{len(missing)} of {len(shards)} generation shards of {model_name} are missing or were "
            f"made by other weights, seed or settings: {', '.join(missing[:5])}"
            + (" ..." if len(missing) > 5 else "")
            + "; run their generate_part jobs (snakemake does) "
            "or generate without --assemble"
        )
    written = {}
    for job in jobs:
        rows = [reparse(r, answer_tag) for s in shards if s.job is job for r in read_jsonl(s.path)]
        written[job.out] = write_jsonl(job.out, rows)
    return written


def run_generation(
    cfg: dict, model_name: str, jobs: list[EvalJob], device: str = "cpu", shard_root: str | None = None
) -> dict[str, int]:
    """Generate every eval set of `jobs` in one job (shards resumed) and write its generations files. Returns rows
    written per generations file."""
    generate_shards(cfg, model_name, jobs, device, shard_root)
    return assemble(cfg, model_name, jobs, shard_root, "cpu" if device == "cpu" else "gpu")


def seeding(cfg: dict, device: str) -> str:
    """How sampled texts are seeded by the configured backend on `device` (recorded in each file's sidecar)."""
    if cfg["evaluate"]["backend"] == "hf":
        return "per-batch"
    return "engine" if device == "cpu" else "per-request"
