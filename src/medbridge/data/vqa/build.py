"""Open a VQA source, convert its rows (text pass), draw, save the kept rows' images as PNG (image pass), write items.

Sources, by `vqa.source` (a benchmark entry's own `path` wins over it):
  fixtures      the tiny local dataset `medbridge vqa-fixture` wrote (the tiny profile)
  hub           each benchmark's own Hugging Face dataset (ids, configs, splits from the config entry or adapter)
  medvlthinker  UCSC-VLAA/MedVLThinker-Eval, rows selected by `dataset_name` (the training pool keeps its own)
Local folders are `DatasetDict.save_to_disk` outputs, optionally one per config (`<path>/<config>/`), or
`<path>/<config>/<split>.parquet` files.

Nothing is dropped silently: rows that cannot become an MCQ, and rows not drawn under `max_items`, are counted
(with the skipped ids and reasons) in the sidecar `skipped.json` next to the items.
"""

from __future__ import annotations

import os
import re
import shutil
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medbridge import MedbridgeError
from medbridge.config import run_dir
from medbridge.data.vqa import get_adapter, source_entry
from medbridge.data.vqa.base import Adapter, Context, Skip
from medbridge.io import write_json, write_jsonl


@dataclass
class Table:
    config: str | None
    split: str
    ds: object  # datasets.Dataset


@dataclass
class Source:
    name: str  # the benchmark (or pool) the items are for
    adapter: Adapter  # the converter of the rows' shape (the consolidated one in medvlthinker mode)
    tables: list[Table]
    ctx: Context
    where: str  # provenance: which dataset/folder, configs, splits
    dataset_name: str | None = None  # consolidated mode: keep only rows of this dataset_name


@dataclass
class Candidate:
    table: int
    index: int
    id: str
    fields: dict


@dataclass
class Pass:
    """The outcome of the text pass over a source."""

    candidates: list[Candidate]
    n_rows: int
    skipped: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def open_source(cfg: dict, name: str, source_dir: str | Path | None = None, images: bool = True) -> Source:
    """The tables of a source; `images=False` (text pass only) skips fetching an image archive."""
    target = get_adapter(name)
    entry = source_entry(cfg, name)
    mode = cfg.get("vqa", {}).get("source", "hub")
    configs = entry.get("configs") or ([entry["config"]] if "config" in entry else target.hub["configs"])
    splits = entry.get("splits") or target.hub["splits"]
    if entry.get("path"):
        root = Path(entry["path"])
        tables, where = _load_local(root, configs, splits), f"local:{root}"
    elif mode == "fixtures":
        if source_dir is None:
            raise MedbridgeError(
                f"vqa.source is fixtures but no fixture folder was given for {name}; run "
                f"`medbridge vqa-fixture --name {name}` (snakemake does) and pass --source-dir"
            )
        root = Path(source_dir)
        tables, where = _load_local(root, configs, splits), f"fixtures:{root}"
    elif mode == "medvlthinker" and target.kind == "benchmark":
        cons = cfg["vqa"]["consolidated"]
        consolidated = get_adapter("medvlthinker_eval")
        split = cons["split"]
        if cons.get("path"):
            tables, where = _load_local(Path(cons["path"]), [None], [split]), f"local:{cons['path']}"
        else:
            cid = cons.get("id", consolidated.hub["id"])
            tables, where = _load_hub(cfg, cid, [None], [split], cons.get("revision"))
        return Source(
            name,
            consolidated,
            tables,
            Context(),
            f"{where} (dataset_name={target.consolidated_name})",
            target.consolidated_name,
        )
    else:
        root = None
        hid = entry.get("id", target.hub["id"])
        tables, where = _load_hub(cfg, hid, configs, splits, entry.get("revision"))
    ctx = Context(images_dir=_images_dir(cfg, target, entry, root) if images else None)
    return Source(name, target, tables, ctx, f"{where} configs={configs} splits={splits}")


def text_pass(src: Source) -> Pass:
    """Convert every row without decoding its images; rows that cannot be MCQs are recorded with their reason."""
    out = Pass([], 0)
    for t, table in enumerate(src.tables):
        drop = [c for c in src.adapter.image_columns if c in table.ds.column_names]
        for i, row in enumerate(table.ds.remove_columns(drop) if drop else table.ds):
            if src.dataset_name is not None and row.get("dataset_name") != src.dataset_name:
                continue  # another benchmark's row of the consolidated set
            out.n_rows += 1
            rid = src.adapter.item_id(row, table.split, i) or _default_id(src.name, table, i)
            try:
                fields = src.adapter.convert(row, src.ctx)
            except Skip as e:
                out.skipped[str(e)].append(rid)
                continue
            out.candidates.append(Candidate(t, i, rid, fields))
    ids = [c.id for c in out.candidates]
    if len(set(ids)) != len(ids):
        raise MedbridgeError(f"{src.name}: item ids are not unique; the adapter's item_id must be")
    return out


def draw(candidates: list, max_items: int | None, seed: int, name: str) -> list:
    """At most `max_items`, drawn without replacement (seeded by run seed and name), in source order."""
    if max_items is None or len(candidates) <= max_items:
        return list(candidates)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    return [candidates[i] for i in np.sort(rng.choice(len(candidates), size=max_items, replace=False))]


def materialize(src: Source, chosen: list[Candidate], images_dir: str | Path, extra: dict | None = None):
    """Items for the chosen candidates, their images written as PNG under images_dir (swapped in whole).

    Returns (items, skipped {reason: [ids]}) where skipped holds rows whose images turned out unusable.
    """
    final = Path(images_dir)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    items, skipped = [], defaultdict(list)
    try:
        for c in chosen:
            table = src.tables[c.table]
            try:
                images = src.adapter.images(table.ds[c.index], src.ctx)
                if not images:
                    raise Skip("no image")
            except Skip as e:
                skipped[str(e)].append(c.id)
                continue
            refs = []
            for j, im in enumerate(images):
                fname = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', c.id)}_{j}.png"
                (im if im.mode in ("RGB", "L") else im.convert("RGB")).save(tmp / fname, format="PNG")
                refs.append({"path": str(final / fname)})
            f = c.fields
            items.append(
                {
                    "id": c.id,
                    "source": src.name,
                    "split": table.split,
                    "images": refs,
                    "question": f["question"],
                    "options": f["options"],
                    "answer": f["answer"],
                    "answer_text": f["answer_text"],
                    "modality": f.get("modality") or src_modality(src),
                    "label": -1,
                    "meta": {**f.get("meta", {}), "config": table.config, **(extra or {})},
                }
            )
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return items, skipped


def src_modality(src: Source) -> str | None:
    return get_adapter(src.name).modality


def build_items(
    cfg: dict,
    name: str,
    out_items: str | Path,
    images_dir: str | Path,
    skipped_path: str | Path,
    source_dir: str | Path | None = None,
) -> dict:
    """The `vqa-items` step: items.jsonl, images/ and skipped.json of one benchmark; returns the summary."""
    get_adapter(name, "benchmark")
    src = open_source(cfg, name, source_dir)
    tp = text_pass(src)
    entry = source_entry(cfg, name)
    max_items = entry.get("max_items", cfg["vqa"].get("max_items"))
    chosen = draw(tp.candidates, max_items, cfg["seed"], name)
    items, late = materialize(src, chosen, images_dir)
    for reason, ids in late.items():
        tp.skipped[reason] += ids
    summary = {
        "benchmark": name,
        "source": src.where,
        "n_rows": tp.n_rows,
        "n_candidates": len(tp.candidates),
        "max_items": max_items,
        "n_not_drawn": len(tp.candidates) - len(chosen),
        "n_items": len(items),
        "n_skipped": sum(len(v) for v in tp.skipped.values()),
        "skipped": {r: {"count": len(ids), "ids": ids} for r, ids in sorted(tp.skipped.items())},
    }
    write_json(skipped_path, summary)
    if not items:
        reasons = {r: len(ids) for r, ids in tp.skipped.items()}
        raise MedbridgeError(
            f"{name}: no row of {src.where} became an MCQ item (skipped: {reasons}); check the "
            "source and the benchmark entry (configs, splits)"
        )
    write_jsonl(out_items, items)
    return summary


COUNT_SOURCES = ("medvlthinker", "hub", "fixtures")


def source_counts(cfg: dict, sources: list[str], fixtures_root: str | Path | None = None) -> list[dict]:
    """Per benchmark and source, how many rows the text pass sees, how many can be MCQ items, why the rest cannot,
    and how many items `max_items` keeps: the Table 3 item counts each source yields (no image is decoded).

    `fixtures_root` (the tiny profile): `fixtures` reads `<root>/<benchmark>/`, and `medvlthinker` reads the
    consolidated fixture `<root>/medvlthinker_eval/` instead of the hub."""
    import copy

    rows = []
    for source in sources:
        if source not in COUNT_SOURCES:
            raise MedbridgeError(f"unknown VQA source {source!r} to count; choose from {list(COUNT_SOURCES)}")
        if source == "fixtures" and fixtures_root is None:
            raise MedbridgeError("counting the fixtures source needs --fixtures <folder of vqa fixtures>")
        c = copy.deepcopy(cfg)
        c["vqa"]["source"] = source
        if source == "medvlthinker" and fixtures_root is not None:
            c["vqa"]["consolidated"] = {
                **c["vqa"]["consolidated"],
                "path": str(Path(fixtures_root) / "medvlthinker_eval"),
            }
        for entry in c["vqa"].get("benchmarks", []):
            name = entry["name"]
            src = open_source(c, name, Path(fixtures_root) / name if source == "fixtures" else None, images=False)
            tp = text_pass(src)
            max_items = entry.get("max_items", c["vqa"].get("max_items"))
            n_items = len(tp.candidates) if max_items is None else min(max_items, len(tp.candidates))
            rows.append(
                {
                    "benchmark": name,
                    "source": source,
                    "where": src.where,
                    "n_rows": tp.n_rows,
                    "n_candidates": len(tp.candidates),
                    "max_items": max_items,
                    "n_items": n_items,
                    "n_skipped": sum(len(v) for v in tp.skipped.values()),
                    "skipped": "; ".join(f"{r}: {len(ids)}" for r, ids in sorted(tp.skipped.items())),
                }
            )
    return rows


def write_fixture(cfg: dict, name: str, out_dir: str | Path) -> Path:
    """The `vqa-fixture` step: a tiny dataset in the source's raw shape, written whole or not at all."""
    adapter = get_adapter(name)
    spec = cfg["vqa"]["fixture"]
    final = Path(out_dir)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        adapter.fixture(tmp, spec, np.random.default_rng([cfg["seed"], zlib.crc32(name.encode())]))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _default_id(name: str, table: Table, index: int) -> str:
    return "-".join(str(p) for p in (name, table.config, table.split, index) if p is not None)


def _load_local(root: Path, configs: list, splits: list) -> list[Table]:
    from datasets import Dataset, load_from_disk

    if not root.exists():
        raise MedbridgeError(
            f"VQA source folder {root} does not exist; make it (snakemake's vqa_fixture rule, or "
            "download the dataset and save_to_disk there) or fix the path"
        )
    tables = []
    for config in configs:
        d = root / (config or "default")
        d = d if d.is_dir() else root
        for split in splits:
            if (d / "dataset_dict.json").exists():
                dd = load_from_disk(str(d))
                if split not in dd:
                    raise MedbridgeError(f"{d} has splits {list(dd)}, not {split!r}; fix the entry's `splits`")
                ds = dd[split]
            elif (d / f"{split}.parquet").exists():
                ds = Dataset.from_parquet(str(d / f"{split}.parquet"))
            else:
                raise MedbridgeError(
                    f"no split {split!r} of config {config!r} under {d}: expected a save_to_disk "
                    f"folder (dataset_dict.json) or {split}.parquet"
                )
            tables.append(Table(config, split, ds))
    return tables


def _load_hub(cfg: dict, dataset_id: str, configs: list, splits: list, revision: str | None) -> tuple[list, str]:
    """The tables of a hub dataset and where they came from: with `hub_cache` configured, its snapshot there (fetched
    on the login node by the download_dataset rule), read offline; else from the hub (network)."""
    from datasets import load_dataset

    from medbridge.hub import dataset_snapshot

    snapshot = dataset_snapshot(cfg, dataset_id, revision)
    where = f"hub:{dataset_id}@{snapshot.name if snapshot else revision or 'main'}"
    tables = []
    for config in configs:
        for split in splits:
            try:  # a cached snapshot is a local dataset folder: the same files and README configs as on the hub
                ds = (
                    load_dataset(str(snapshot), config, split=split)
                    if snapshot
                    else load_dataset(dataset_id, config, split=split, revision=revision)
                )
            except Exception as e:  # network, auth, a renamed config: say which dataset and how to fix it
                raise MedbridgeError(
                    f"could not load {dataset_id} (config {config}, split {split}): "
                    f"{type(e).__name__}: {e}. Check network/HF token, or download it and set "
                    "the entry's `path`"
                ) from e
            tables.append(Table(config, split, ds))
    return tables, where


def _images_dir(cfg: dict, adapter: Adapter, entry: dict, root: Path | None) -> Path | None:
    """Where a source keeps image files outside its rows (MedXpertQA's images.zip), if it does."""
    archive = adapter.hub.get("images_archive")
    if not archive:
        return None
    if entry.get("images_dir"):
        return Path(entry["images_dir"])
    if root is not None:
        return root / "images"
    cache = run_dir(cfg) / "vqa" / "_cache" / adapter.name
    if not (cache / ".complete").exists():
        _fetch_archive(entry.get("id", adapter.hub["id"]), archive, entry.get("revision"), cache)
    return cache / "images" if (cache / "images").is_dir() else cache


def _fetch_archive(repo_id: str, filename: str, revision: str | None, dest: Path) -> None:
    import zipfile

    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(repo_id, filename, repo_type="dataset", revision=revision)
    except Exception as e:
        raise MedbridgeError(
            f"could not download {filename} of {repo_id} ({type(e).__name__}: {e}); download and "
            "extract it yourself and set the benchmark entry's `images_dir`"
        ) from e
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():  # refuse members that would land outside dest
            target = (dest / member).resolve()
            if not target.is_relative_to(dest.resolve()):
                raise MedbridgeError(f"{filename} of {repo_id} holds an unsafe path {member!r}; not extracting it")
        zf.extractall(dest)
    (dest / ".complete").touch()
