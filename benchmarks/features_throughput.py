"""Benchmark: feature extraction throughput (images/s) of the `features` rule with the authors' augmentation, the
images prepared on the main process (workers 0, as before the DataLoader) against N DataLoader worker processes
(what the rule passes: its threads). The tower is the tiny model's on the CPU, so the ratio is a lower bound of what
workers buy on a GPU, where the tower is far faster than PIL and the image processor. Prints both rates and the ratio.

    .venv/bin/python benchmarks/features_throughput.py [--images 512] [--size 224] [--workers 2] [--batch 64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from medbridge.config import PROJECT_ROOT, validate_config
from medbridge.models.tiny import build_tiny_model, tokenizer_corpus
from medbridge.probe.features import _load_tower, augment_settings, embed_images, train_transform


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--size", type=int, default=224, help="image side (MedMNIST+ 224 as the paper)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()

    cfg = validate_config(yaml.safe_load((PROJECT_ROOT / "config" / "config.yaml").read_text()))
    tmp = Path(tempfile.mkdtemp())
    build_tiny_model(tmp / "model", tokenizer_corpus(cfg["data"]["datasets"]), cfg["tiny_model"], cfg["seed"])
    cfg["models"] = {"base": {"source": "local", "path": str(tmp / "model")}}
    cfg["data"]["size"] = args.size
    cfg["probe"] |= {"augment": "authors"}
    aug = augment_settings(cfg)
    tower, processor, size = _load_tower(cfg, "base", "cpu")
    images = np.random.default_rng(0).integers(0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8)

    def rate(workers: int) -> float:
        embed_images(
            tower,
            processor,
            images[: args.batch],
            "merger",
            args.batch,
            "cpu",
            size,
            train_transform(aug),
            [0],
            workers,
        )  # (warm-up)
        t0 = time.perf_counter()
        embed_images(tower, processor, images, "merger", args.batch, "cpu", size, train_transform(aug), [0], workers)
        return len(images) / (time.perf_counter() - t0)

    torch.set_num_threads(max(1, torch.get_num_threads()))
    serial, parallel = rate(0), rate(args.workers)
    print(f"{args.images} images of {args.size} px, RandomResizedCrop({aug['crop_size']}) + flip, batch {args.batch}")
    print(f"main process only (workers 0): {serial:8.1f} images/s")
    print(f"DataLoader, {args.workers} workers:      {parallel:8.1f} images/s")
    print(f"ratio: {parallel / serial:.2f}x")


if __name__ == "__main__":
    main()
