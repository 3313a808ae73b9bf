"""What made a cached or resumable file: the keys that generation shards, feature caches and training work dirs
are stored with. A cache whose key differs from the current one was made by other weights, seed or settings and
is discarded (a stale shard of a retrained model would otherwise be served as the new model's answers)."""

from __future__ import annotations

from pathlib import Path


def model_fingerprint(source) -> dict:
    """The model a role resolves to: for a local directory a digest of every file in it (weights, tokenizer, chat
    template, configs); for a hub model the pinned revision and, when it is in the HF cache, the resolved snapshot
    commit and weight blobs (no network)."""
    from medbridge.provenance import file_digest, weights_digest

    out = {
        "path": source.path,
        "revision": source.revision,
        "processor": source.processor_path,
        "processor_revision": source.processor_revision,
        "dtype": source.dtype,
    }
    if source.local:
        out["files_sha256"] = file_digest(source.path)["sha256"] if Path(source.path).is_dir() else None
    else:
        digest = weights_digest(source)
        out |= {"weights_sha256": digest.get("weights_sha256"), "snapshot": digest.get("snapshot")}
    return out
