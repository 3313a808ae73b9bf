"""MedMNIST-v2 2D datasets: the registry of the paper's 12 tasks, the real download, a synthetic twin, one loader.

Files follow the medmnist package's own layout: `<flag>_<size>.npz` (`<flag>.npz` at size 28) with keys
`{train,val,test}_{images,labels}`, uint8 images (N,H,W) for grayscale or (N,H,W,3) for RGB, labels (N,1) or, for
ChestMNIST, (N,14) binary. Real and synthetic files are read by the same loader, which checks that layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from medbridge import MedbridgeError

SPLITS = ("train", "val", "test")

# The paper's grouping of the 12 tasks (Tables 1-2, Figure 1).
MODALITY = {
    "breastmnist": "radiology",
    "chestmnist": "radiology",
    "pneumoniamnist": "radiology",
    "organamnist": "radiology",
    "organcmnist": "radiology",
    "organsmnist": "radiology",
    "bloodmnist": "microscopy",
    "pathmnist": "microscopy",
    "tissuemnist": "microscopy",
    "dermamnist": "visible_light_photography",
    "octmnist": "visible_light_photography",
    "retinamnist": "visible_light_photography",
}
DATASETS = tuple(MODALITY)


@dataclass(frozen=True)
class DatasetInfo:
    flag: str
    modality: str
    task: str
    labels: tuple[str, ...]
    n_channels: int
    description: str

    @property
    def multi_label(self) -> bool:
        return self.task.startswith("multi-label")

    @property
    def n_classes(self) -> int:
        return len(self.labels)


@lru_cache(maxsize=1)
def medmnist_info() -> dict:
    """The medmnist package's INFO table, read from medmnist/info.py without importing the package (whose
    __init__ imports torch: seconds per CLI call, times hundreds of DAG jobs)."""
    import importlib.util

    spec = importlib.util.find_spec("medmnist")
    if spec is None or not spec.submodule_search_locations:
        raise MedbridgeError("the medmnist package is not installed; run the README's install command")
    info_py = Path(spec.submodule_search_locations[0]) / "info.py"
    module_spec = importlib.util.spec_from_file_location("_medmnist_info", info_py)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.INFO


@cache
def dataset_info(flag: str) -> DatasetInfo:
    """Registry lookup: label names, channels and task type come from the medmnist package's INFO table."""
    if flag not in MODALITY:
        raise MedbridgeError(f"unknown dataset {flag!r}; choose one of {list(DATASETS)}")
    info = medmnist_info()[flag]
    labels = tuple(info["label"][str(i)] for i in range(len(info["label"])))
    return DatasetInfo(flag, MODALITY[flag], info["task"], labels, info["n_channels"], info["description"])


def npz_name(flag: str, size: int) -> str:
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def expected_shapes(flag: str, size: int, n: int) -> tuple[tuple, tuple]:
    info = dataset_info(flag)
    img = (n, size, size) if info.n_channels == 1 else (n, size, size, 3)
    lab = (n, info.n_classes) if info.multi_label else (n, 1)
    return img, lab


def download(flag: str, size: int, root: str | Path) -> Path:
    """Fetch the real npz from medmnist's URL and check its MD5 (needs network; the paper profile). Download only,
    as medmnist's own `download()` does it: the file is never loaded here (the login node's job; a 224 px train split
    is up to 13.5 GB in memory), `check` reads it in a cluster job."""
    from torchvision.datasets.utils import download_url

    info = medmnist_info()[flag]
    suffix = "" if size == 28 else f"_{size}"
    root = Path(root)
    try:  # an existing file with the right MD5 is kept as is
        download_url(info[f"url{suffix}"], str(root), npz_name(flag, size), md5=info[f"MD5{suffix}"])
    except Exception as e:  # network, or a corrupt transfer (MD5 mismatch)
        raise MedbridgeError(
            f"could not download {npz_name(flag, size)} from {info[f'url{suffix}']} "
            f"({type(e).__name__}: {e}); check network on this (login) node, or put the file "
            f"there yourself (MD5 {info[f'MD5{suffix}']})"
        ) from e
    return root / npz_name(flag, size)


def check(path: str | Path, flag: str) -> dict:
    """Read every split back (one at a time) through the loader's layout checks: {split: {n, image shape}}."""
    out = {}
    for split in SPLITS:
        images, labels = load_split(path, flag, split)
        out[split] = {"n": len(images), "images": list(images.shape), "labels": list(labels.shape)}
        del images, labels
    return out


def make_synthetic(flag: str, size: int, n_per_split: dict[str, int], noise: float, seed: int) -> dict:
    """Arrays in MedMNIST's exact layout whose images carry a learnable, class-dependent signal.

    Each class owns a seeded low-resolution template (4x4 blocks, per channel) upsampled to `size`; an image is its
    class's template (for ChestMNIST, the mean of its positive findings' templates) plus Gaussian noise of std `noise`.
    Labels are balanced round-robin over classes, so every class appears in every split.
    """
    info = dataset_info(flag)
    rng = np.random.default_rng([seed, DATASETS.index(flag)])
    channels = 3 if info.n_channels == 3 else 1
    templates = rng.uniform(0.1, 0.9, size=(info.n_classes, 4, 4, channels))
    templates = templates.repeat(size // 4 + 1, axis=1).repeat(size // 4 + 1, axis=2)[:, :size, :size]
    arrays = {}
    for split in SPLITS:
        n = n_per_split[split]
        cls = np.arange(n) % info.n_classes
        rng.shuffle(cls)
        if info.multi_label:
            labels = np.zeros((n, info.n_classes), dtype=np.uint8)
            labels[np.arange(n), cls] = 1
            extra = rng.random(n) < 0.25  # some images carry a second finding, as in NIH ChestX-ray14
            labels[np.flatnonzero(extra), rng.integers(0, info.n_classes, extra.sum())] = 1
            clean = templates[cls]
            mixed = (labels[..., None, None, None] * templates[None]).sum(1) / labels.sum(1)[:, None, None, None]
            signal = np.where(extra[:, None, None, None], mixed, clean)
        else:
            labels = cls.reshape(n, 1).astype(np.uint8)
            signal = templates[cls]
        img = np.clip(signal + rng.normal(0, noise, signal.shape), 0, 1)
        img = (img * 255).round().astype(np.uint8)
        arrays[f"{split}_images"] = img[..., 0] if channels == 1 else img
        arrays[f"{split}_labels"] = labels
    return arrays


def load_split(path: str | Path, flag: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one split of a MedMNIST npz (real or synthetic), checking the layout; never unpickles."""
    path = Path(path)
    if split not in SPLITS:
        raise MedbridgeError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
    if not path.exists():
        raise MedbridgeError(
            f"MedMNIST file {path} is missing; run `snakemake {path}` (or `medbridge data` for {flag}) to make it"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            if f"{split}_images" not in npz.files or f"{split}_labels" not in npz.files:
                raise MedbridgeError(
                    f"{path} lacks {split}_images/{split}_labels (has {sorted(npz.files)}); "
                    "it is not a MedMNIST npz: delete it and remake it"
                )
            images, labels = npz[f"{split}_images"], npz[f"{split}_labels"]
    except MedbridgeError:
        raise
    except Exception as e:  # zipfile.BadZipFile, EOFError, ValueError on a truncated or corrupt file
        raise MedbridgeError(
            f"{path} is corrupt or truncated ({type(e).__name__}: {e}); delete it and remake it"
        ) from e
    check_arrays(flag, images, labels, where=f"{path}:{split}")
    return images, labels


def check_arrays(flag: str, images: np.ndarray, labels: np.ndarray, where: str) -> None:
    info = dataset_info(flag)
    n = len(images)
    size = images.shape[1] if images.ndim >= 2 else -1
    want_img, want_lab = expected_shapes(flag, size, n)
    if images.dtype != np.uint8 or images.shape != want_img:
        raise MedbridgeError(
            f"{where}: images have shape {images.shape} dtype {images.dtype}; {flag} needs uint8 {want_img} "
            f"({info.n_channels} channel(s)); remake the file"
        )
    if labels.shape != want_lab:
        raise MedbridgeError(f"{where}: labels have shape {labels.shape}; {flag} needs {want_lab}; remake the file")
    hi = 1 if info.multi_label else info.n_classes - 1
    if labels.size and (labels.min() < 0 or labels.max() > hi):
        raise MedbridgeError(
            f"{where}: labels out of range [{labels.min()}, {labels.max()}]; {flag} allows 0..{hi}; remake the file"
        )
