"""What made a cached or resumable file: the keys that generation shards, feature caches and training work dirs
are stored with. A cache whose key differs from the current one was made by other weights, seed or settings and
is discarded (a stale shard of a retrained model would otherwise be served as the new model's answers)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from medbridge.io import sha256_file, sha256_text


@lru_cache(maxsize=None)
def _local_dir_digest(path: str, stamp: tuple) -> str:
    files = sorted(f for f in Path(path).rglob("*") if f.is_file() and not f.name.endswith(".provenance.json"))
    return sha256_text("".join(f"{f.relative_to(path)}:{sha256_file(f)}\n" for f in files))


def model_fingerprint(source) -> dict:
    """The model a role resolves to: for a local directory a digest of every file in it (weights, tokenizer, chat
    template, configs); for a hub model the pinned revision and, when it is in the HF cache, the resolved snapshot
    commit and weight blobs (no network)."""
    from medbridge.provenance import weights_digest

    out = {"path": source.path, "revision": source.revision, "processor": source.processor_path,
           "processor_revision": source.processor_revision, "dtype": source.dtype}  # fmt: skip
    if source.local:
        p = Path(source.path)
        stamp = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(p.rglob("*")) if f.is_file())
        out["files_sha256"] = _local_dir_digest(str(p), stamp)
    else:
        digest = weights_digest(source)
        out |= {"weights_sha256": digest.get("weights_sha256"), "snapshot": digest.get("snapshot")}
    return out
