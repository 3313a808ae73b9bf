"""Benchmark: HF-backend sampling throughput (questions x samples per second) on the tiny model, batched across
questions with num_return_sequences, against a one-sample-at-a-time loop (how the authors' inference.py samples)
on the same prompts. Prints both rates and their ratio.

    .venv/bin/python benchmarks/sampling_throughput.py [--items 16] [--samples 8] [--max-new-tokens 24]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import yaml

from medbridge.config import PROJECT_ROOT, validate_config
from medbridge.data.mcq import load_item_images, make_items
from medbridge.data.medmnist import make_synthetic, npz_name
from medbridge.generate import SamplingSettings, get_backend
from medbridge.generate.chat import chat_prompt
from medbridge.io import save_npz
from medbridge.models.tiny import build_tiny_model, tokenizer_corpus


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=16)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    args = ap.parse_args()

    cfg = validate_config(yaml.safe_load((PROJECT_ROOT / "config" / "config.yaml").read_text()))
    tmp = Path(tempfile.mkdtemp())
    build_tiny_model(tmp / "model", tokenizer_corpus(cfg["data"]["datasets"]), cfg["tiny_model"], cfg["seed"])
    save_npz(
        tmp / npz_name("organamnist", 64),
        **make_synthetic("organamnist", 64, {"train": 11, "val": 11, "test": 4 * 11}, 0.35, 0),
    )
    items = make_items("organamnist", tmp / npz_name("organamnist", 64), "test", 4, 0)[: args.items]
    cfg["models"] = {"base": {"source": "local", "path": str(tmp / "model")}}
    cfg["evaluate"].update(models=["base"], batch_size=args.items)
    settings = SamplingSettings(args.samples, 0.7, 0.9, args.max_new_tokens, "eval")
    backend = get_backend("hf")(cfg, "base")
    # min_new_tokens pins the length, so both ways decode exactly the same number of tokens
    backend.model.generation_config.min_new_tokens = args.max_new_tokens

    backend.generate(items[:2], settings, seed=0, progress=False)  # warm-up
    t0 = time.perf_counter()
    backend.generate(items, settings, seed=0, progress=False)
    batched = time.perf_counter() - t0

    proc, model = backend.processor, backend.model
    t0 = time.perf_counter()
    with torch.inference_mode():
        for it in items:
            enc = proc(text=[chat_prompt(proc, it, "eval")], images=[load_item_images(it)], return_tensors="pt")
            model.generate(**enc, do_sample=False, max_new_tokens=args.max_new_tokens)
            for s in range(args.samples):
                torch.manual_seed(s)
                model.generate(**enc, do_sample=True, temperature=0.7, top_p=0.9, max_new_tokens=args.max_new_tokens)
    loop = time.perf_counter() - t0

    work = len(items) * args.samples
    threads = torch.get_num_threads()
    print(f"items={len(items)} samples={args.samples} max_new_tokens={args.max_new_tokens} threads={threads}")
    print(f"batched HF backend : {work / batched:8.1f} question-samples/s ({batched:.2f} s, greedy included)")
    print(f"one-at-a-time loop : {work / loop:8.1f} question-samples/s ({loop:.2f} s, greedy included)")
    print(f"speed-up           : {loop / batched:8.1f}x")


if __name__ == "__main__":
    main()
