"""RQ1 / Table 1: frozen vision-tower features of a model role, cached per (model, dataset).

The tower is the model's own vision encoder (for Qwen2.5-VL in transformers 5: `model.model.visual`), run under
`torch.no_grad` in eval mode. Images come from the MedMNIST npz at the configured size (grayscale -> RGB) and pass
through the role's own image processor (its pixel bounds, or `probe.min_pixels` / `probe.max_pixels`). Each image's
tokens are mean-pooled into one vector. `probe.features` picks the tokens:
  - `merger`: the patch merger's output (the tokens the language model sees; what the authors' linprobe takes);
  - `vit`:    the last ViT block's output before the merger (one token per 14x14 patch).

Which images (every random choice seeded from the config `seed`):
  - train: all labelled images, or at most `probe.train_per_class` per class (seeded draw);
  - val:   all labelled images (the probe's model selection);
  - test:  the balanced subset of the MCQ items: `mcq.per_class` per class (absent: the smallest class's count),
           drawn with the same seed and generator as `medbridge.data.mcq.make_items`, so the probe is scored on
           exactly the images the MCQ eval asks about (when `mcq.eval_split` is `test`).
Augmentation (`probe.augment`):
  - `authors` (the paper default): as the authors' linprobe.py, every training epoch sees freshly augmented train
    images, RandomResizedCrop(crop_size, bicubic) + RandomHorizontalFlip (seeded per dataset and epoch), so the
    train features are extracted once per epoch: `train_features` is (epochs, N, D), a GPU cost `medbridge plan`
    shows. Val and test images go through Resize(resize_size, bicubic) + CenterCrop(crop_size) once.
    crop_size defaults to data.size (the authors' 224), resize_size to crop_size x 256/224 (their 256).
  - `none` (the cheap alternative): the images as they are, features extracted once and cached.

ChestMNIST (multi-label, 14 findings) follows the MCQ rule (`medbridge.data.mcq.class_of`, `mcq.chestmnist`): images
with exactly one positive finding, labelled by that finding, plus (`with_no_finding`, the default) images with none
as a 15th class. Its Table 1 number is therefore 15-way (or 14-way) accuracy over those images (balanced test
subset), not the multi-label AUC/accuracy of the MedMNIST benchmark.

File (`features/<model>/<dataset>.npz`): `{split}_features` (N, D) float32, `{split}_labels` (N,) int64 class index,
`{split}_indices` (N,) int64 row in the MedMNIST split, for split in train/val/test (with augment `authors`,
`train_features` is (epochs, N, D)); `meta` (a JSON string: model,
dataset, feature mode, dimension, and the settings the cache is keyed on).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from medbridge import MedbridgeError
from medbridge.data.mcq import balanced_indices, class_of
from medbridge.data.medmnist import DATASETS, SPLITS, load_split
from medbridge.io import save_npz

FEATURE_MODES = ("merger", "vit")
AUGMENTS = ("authors", "none")


def augment_settings(cfg: dict) -> dict:
    """The probe's image transforms (module docstring); part of the features' cache key."""
    probe = cfg["probe"]
    mode = probe["augment"]
    if mode not in AUGMENTS:
        raise MedbridgeError(f"probe.augment {mode!r} is unknown; choose one of {list(AUGMENTS)}")
    if mode == "none":
        return {"augment": "none"}
    crop = probe.get("crop_size", cfg["data"]["size"])
    # "draws": each image's crop seeded by its position (ImageBatches), so features made before that change are redone
    return {
        "augment": "authors",
        "draws": "per image",
        "crop_size": crop,
        "resize_size": probe.get("resize_size", round(crop * 256 / 224)),
        "epochs": probe["epochs"],
    }


def train_transform(aug: dict):
    """The authors' training transform (linprobe.py, tfm_train)."""
    from torchvision import transforms as T

    return T.Compose(
        [T.RandomResizedCrop(aug["crop_size"], interpolation=T.InterpolationMode.BICUBIC), T.RandomHorizontalFlip()]
    )


def eval_transform(aug: dict):
    """The authors' evaluation transform (linprobe.py, tfm_val)."""
    from torchvision import transforms as T

    return T.Compose(
        [T.Resize(aug["resize_size"], interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(aug["crop_size"])]
    )


def feature_settings(cfg: dict, model: str, dataset: str, npz_path: str | Path) -> dict:
    """Everything the cached features depend on; a cached file with other settings is recomputed."""
    from medbridge.models.registry import resolve

    probe, src = cfg["probe"], resolve(cfg, model, "probe")
    npz_path = Path(npz_path)
    from medbridge.fingerprint import model_fingerprint

    return {
        "model": model,
        "model_path": src.path,
        "model_revision": src.revision,
        "model_files": model_fingerprint(src),  # a retrained model's features are recomputed
        "dtype": src.dtype,
        "dataset": dataset,
        "data_file": npz_path.name,
        "data_bytes": npz_path.stat().st_size if npz_path.exists() else None,
        "features": probe["features"],
        "train_per_class": probe.get("train_per_class"),
        "test_per_class": cfg["mcq"].get("per_class"),
        "test_balance": cfg["mcq"]["balance"],
        "chestmnist": cfg["mcq"]["chestmnist"],
        "min_pixels": probe.get("min_pixels"),
        "max_pixels": probe.get("max_pixels"),
        "seed": cfg["seed"],
        **augment_settings(cfg),
    }


def split_indices(flag: str, labels: np.ndarray, split: str, cfg: dict) -> np.ndarray:
    """Rows of one split the probe uses (see the module docstring), sorted."""
    classes = class_of(flag, labels, cfg["mcq"]["chestmnist"])
    if split == "test":
        # The generator make_items draws its balanced subset with, consumed first in the same way: same images.
        rng = np.random.default_rng([cfg["seed"], DATASETS.index(flag), SPLITS.index(split)])
        return balanced_indices(classes, cfg["mcq"].get("per_class"), rng, cfg["mcq"]["balance"])
    cap = cfg["probe"].get("train_per_class") if split == "train" else None
    if cap is None:
        idx = np.flatnonzero(classes >= 0)
        if not len(idx):
            raise MedbridgeError(f"{flag} {split}: no labelled images; check the dataset file")
        return idx
    rng = np.random.default_rng([cfg["seed"], DATASETS.index(flag), SPLITS.index(split), 1])  # 1: the probe's draw
    return balanced_indices(classes, cap, rng, "capped")


def vision_tower(model):
    """The vision encoder of a loaded image-text model (Qwen2.5-VL: model.model.visual in transformers 5)."""
    for path in ("model.visual", "visual", "model.vision_tower", "vision_tower"):
        obj = model
        for attr in path.split("."):
            obj = getattr(obj, attr, None)
            if obj is None:
                break
        if obj is not None:
            return obj
    raise MedbridgeError(
        f"{type(model).__name__} has no vision tower at model.visual / visual / vision_tower; "
        "the linear probe supports Qwen2.5-VL-style models"
    )


class ImageBatches:
    """Batches of images as the tower takes them: uint8 array -> RGB PIL -> `transform` -> the image processor.
    Map-style, so a DataLoader's worker processes make them while the main process runs the tower. Each image's
    random transform is seeded from (`seed_parts`, its position): the same crops whatever the number of workers."""

    def __init__(
        self,
        images: np.ndarray,
        image_processor,
        batch_size: int,
        size: dict | None = None,
        transform=None,
        seed_parts: list[int] | None = None,
    ):
        self.images, self.image_processor, self.batch_size = images, image_processor, batch_size
        self.kwargs = {"size": size} if size else {}
        self.transform, self.seed_parts = transform, list(seed_parts or [])

    def __len__(self) -> int:
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, b: int):
        from PIL import Image

        pil = []
        for i in range(b * self.batch_size, min((b + 1) * self.batch_size, len(self.images))):
            image = Image.fromarray(self.images[i]).convert("RGB")
            if self.transform is not None:
                with _torch_seed([*self.seed_parts, i]):
                    image = self.transform(image)
            pil.append(image)
        x = self.image_processor(images=pil, return_tensors="pt", **self.kwargs)
        return x["pixel_values"], x["image_grid_thw"]


def embed_images(
    tower,
    image_processor,
    images: np.ndarray,
    mode: str,
    batch_size: int,
    device: str = "cpu",
    size: dict | None = None,
    transform=None,
    seed_parts: list[int] | None = None,
    workers: int = 0,
) -> np.ndarray:
    """Mean-pooled tower features (N, D) float32 of uint8 images (N,H,W) or (N,H,W,3); `transform` (PIL -> PIL) is
    applied to each image first, seeded per image from `seed_parts`. With `workers` > 0 the images are decoded,
    transformed and processed in that many DataLoader processes, in order, while this one runs the tower."""
    import torch

    if mode not in FEATURE_MODES:
        raise MedbridgeError(f"probe.features {mode!r} is unknown; choose one of {list(FEATURE_MODES)}")
    batches = ImageBatches(images, image_processor, batch_size, size, transform, seed_parts)
    loader = torch.utils.data.DataLoader(
        batches, batch_size=None, shuffle=False, num_workers=workers, prefetch_factor=2 if workers else None
    )
    merge = getattr(tower, "spatial_merge_size", 2) ** 2
    out = []
    with torch.no_grad():
        for pixel_values, grid in loader:
            grid = grid.to(device)
            o = tower(pixel_values.to(device, dtype=tower.dtype), grid_thw=grid)
            # The ViT tokens are window-permuted only within each image, so per-image means are unaffected.
            tokens, per_image = (
                (o.pooler_output, grid.prod(-1) // merge) if mode == "merger" else (o.last_hidden_state, grid.prod(-1))
            )
            pooled = [t.float().mean(0) for t in torch.split(tokens, per_image.tolist())]
            out.append(torch.stack(pooled).cpu().numpy())
    return np.concatenate(out).astype(np.float32, copy=False)


def _cached(path: Path, settings: dict) -> bool:
    if not path.exists():
        return False
    try:
        with np.load(path, allow_pickle=False) as f:
            return json.loads(str(f["meta"]))["settings"] == settings
    except Exception:  # unreadable or from an older layout: recompute
        return False


def extract_features(
    cfg: dict, model: str, jobs: list[tuple[str, str | Path, str | Path]], workers: int = 0
) -> list[Path]:
    """Write features for each (dataset, MedMNIST npz, out npz) of one model; load the model once, and only if some
    output is missing or was made with other settings. Images are prepared in `workers` DataLoader processes (the
    job's threads; the features do not depend on it). Returns the paths (re)written."""
    probe = cfg["probe"]
    mode, device = probe["features"], probe["device"]
    loaded, written = None, []
    for dataset, npz_path, out_path in jobs:
        settings, out_path = feature_settings(cfg, model, dataset, npz_path), Path(out_path)
        if _cached(out_path, settings):
            print(f"{out_path}: cached (same settings)")
            continue
        if loaded is None:
            loaded = _load_tower(cfg, model, device)
        tower, image_processor, size = loaded
        aug, arrays = augment_settings(cfg), {}
        for split in SPLITS:
            images, labels = load_split(npz_path, dataset, split)
            idx = split_indices(dataset, labels, split, cfg)

            def embed(transform=None, seed_parts=None, images=images[idx], loaded=loaded):
                tower, image_processor, size = loaded
                return embed_images(
                    tower,
                    image_processor,
                    images,
                    mode,
                    probe["batch_size"],
                    device,
                    size,
                    transform,
                    seed_parts,
                    workers,
                )

            if aug["augment"] == "none":
                arrays[f"{split}_features"] = embed()
            elif split == "train":  # fresh random crops and flips every epoch, seeded per (dataset, epoch, image)
                epochs = [
                    embed(train_transform(aug), [cfg["seed"], DATASETS.index(dataset), e]) for e in range(aug["epochs"])
                ]
                arrays["train_features"] = np.stack(epochs)
            else:
                arrays[f"{split}_features"] = embed(eval_transform(aug))
            arrays[f"{split}_labels"] = class_of(dataset, labels, cfg["mcq"]["chestmnist"])[idx].astype(np.int64)
            arrays[f"{split}_indices"] = idx.astype(np.int64)
        meta = {
            "model": model,
            "dataset": dataset,
            "features": mode,
            "dim": arrays["test_features"].shape[-1],
            "settings": settings,
        }
        save_npz(out_path, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
        print(f"{out_path}: " + ", ".join(f"{s} {arrays[f'{s}_features'].shape}" for s in SPLITS))
        written.append(out_path)
    return written


@contextmanager
def _torch_seed(parts: list[int]):
    """torch's CPU RNG seeded from `parts` inside the block (torchvision's random transforms draw from it), restored
    after."""
    import torch

    with torch.random.fork_rng(devices=[]):  # devices=[]: the CPU generator only (the transforms' one)
        torch.manual_seed(int(np.random.SeedSequence(parts).generate_state(1)[0]))
        yield


def _load_tower(cfg: dict, model: str, device: str):
    """(vision tower on `device`, image processor, pixel bounds or None); the rest of the model stays on the CPU."""
    import torch

    from medbridge.models.registry import load_model, load_processor, resolve

    if device == "cuda" and not torch.cuda.is_available():
        raise MedbridgeError("probe.device is cuda but no GPU is visible; run on a GPU node or set probe.device: cpu")
    src = resolve(cfg, model, "probe")
    tower = vision_tower(load_model(src, "cpu")).to(device).eval()
    tower.requires_grad_(False)
    image_processor = load_processor(src).image_processor
    probe, size = cfg["probe"], None
    if probe.get("min_pixels") or probe.get("max_pixels"):  # else the processor's own pixel bounds
        size = {
            "shortest_edge": probe.get("min_pixels", image_processor.size["shortest_edge"]),
            "longest_edge": probe.get("max_pixels", image_processor.size["longest_edge"]),
        }
    return tower, image_processor, size


def load_features(path: str | Path) -> tuple[dict, dict]:
    """(arrays by name, meta) of a features file, checked."""
    path = Path(path)
    if not path.exists():
        raise MedbridgeError(f"features file {path} is missing; run `medbridge features` (snakemake makes it)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files if k != "meta"}
            meta = json.loads(str(f["meta"]))
    except Exception as e:
        raise MedbridgeError(
            f"{path} is not a readable features file ({type(e).__name__}: {e}); delete it and remake it"
        ) from e
    missing = [f"{s}_{k}" for s in SPLITS for k in ("features", "labels") if f"{s}_{k}" not in arrays]
    if missing:
        raise MedbridgeError(f"{path} lacks {missing}; delete it and remake it with `medbridge features`")
    return arrays, meta
