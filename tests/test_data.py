import numpy as np
import pytest

from medbridge import MedbridgeError
from medbridge.data.medmnist import (
    DATASETS,
    SPLITS,
    dataset_info,
    load_split,
    make_synthetic,
    medmnist_info,
    npz_name,
)
from medbridge.io import save_npz


@pytest.mark.parametrize("flag", DATASETS)
def test_synthetic_layout_matches_medmnist(flag, synthetic_dir):
    """Keys, dtype, image and label shapes as the medmnist package's INFO prescribes for that flag."""
    info = medmnist_info()[flag]
    path = synthetic_dir / npz_name(flag, 64)
    assert path.name == f"{flag}_64.npz"
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(f"{s}_{k}" for s in SPLITS for k in ("images", "labels"))
        for split in SPLITS:
            img, lab = npz[f"{split}_images"], npz[f"{split}_labels"]
            assert img.dtype == np.uint8
            assert img.shape[1:] == ((64, 64) if info["n_channels"] == 1 else (64, 64, 3))
            n_labels = len(info["label"])
            assert lab.shape[1:] == ((n_labels,) if info["task"].startswith("multi-label") else (1,))
            assert lab.max() <= (1 if info["task"].startswith("multi-label") else n_labels - 1)


def test_synthetic_classes_are_separable_and_seeded():
    a = make_synthetic("pathmnist", 64, {"train": 90, "val": 9, "test": 9}, 0.35, seed=3)
    b = make_synthetic("pathmnist", 64, {"train": 90, "val": 9, "test": 9}, 0.35, seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    x, y = a["train_images"].reshape(90, -1).astype(float), a["train_labels"][:, 0]
    centroids = np.stack([x[y == c].mean(0) for c in range(9)])
    nearest = ((x[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert (nearest == y).mean() > 0.9  # a class signal a probe (and a tiny VLM) can learn


def test_loader_rejects_missing_corrupt_and_mismatched(tmp_path, synthetic_dir):
    with pytest.raises(MedbridgeError, match="missing"):
        load_split(tmp_path / "nope_64.npz", "organamnist", "test")
    good = (synthetic_dir / npz_name("organamnist", 64)).read_bytes()
    trunc = tmp_path / "organamnist_64.npz"
    trunc.write_bytes(good[: len(good) // 2])
    with pytest.raises(MedbridgeError, match="corrupt or truncated"):
        load_split(trunc, "organamnist", "test")
    arrays = make_synthetic("organamnist", 64, {"train": 11, "val": 11, "test": 11}, 0.3, 0)
    arrays["test_labels"][0, 0] = 42
    bad = tmp_path / "bad.npz"
    save_npz(bad, **arrays)
    with pytest.raises(MedbridgeError, match="labels out of range"):
        load_split(bad, "organamnist", "test")
    with pytest.raises(MedbridgeError, match="needs uint8"):  # RGB file read as a grayscale dataset
        load_split(synthetic_dir / npz_name("pathmnist", 64), "organamnist", "test")


def test_unknown_dataset_is_named():
    with pytest.raises(MedbridgeError, match="unknown dataset 'mnist'"):
        dataset_info("mnist")


def test_the_download_only_downloads_and_the_check_is_a_job(tmp_path, synthetic_dir, tiny_cfg, monkeypatch):
    """`medbridge data` (a local rule, the login node) fetches and MD5-checks the file without loading it;
    `medbridge data-check` (a cluster job) reads every split back; a corrupt file fails the check, naming it."""
    import hashlib
    import json
    import subprocess
    import sys

    import numpy as np

    from medbridge.data import medmnist

    src = synthetic_dir / npz_name("breastmnist", 64)
    info = {
        "breastmnist": {
            **medmnist.medmnist_info()["breastmnist"],
            "url_64": src.as_uri(),
            "MD5_64": hashlib.md5(src.read_bytes()).hexdigest(),
        }
    }
    monkeypatch.setattr(medmnist, "medmnist_info", lambda: info)
    import shutil

    import torchvision.datasets.utils as tv  # the transfer itself (no network here): a copy of the local file

    monkeypatch.setattr(tv, "_urlretrieve", lambda url, path, *a: shutil.copyfile(url.removeprefix("file://"), path))
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("the download step loaded the file"))
    got = medmnist.download("breastmnist", 64, tmp_path / "dl")
    assert got.read_bytes() == src.read_bytes()
    info["breastmnist"]["MD5_64"] = "0" * 32  # a transfer that does not match medmnist's MD5
    with pytest.raises(MedbridgeError, match="MD5|integrity|could not download"):
        medmnist.download("breastmnist", 64, tmp_path / "dl2")
    monkeypatch.undo()

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(tiny_cfg))
    check = [sys.executable, "-m", "medbridge.cli", "data-check", "--config", str(cfg), "--dataset", "breastmnist"]
    proc = subprocess.run(
        [*check, "--npz", str(got), "--out", str(tmp_path / "ok.json")], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "ok.json").read_text())["splits"]["train"]["n"] == 40
    bad = tmp_path / "bad.npz"
    bad.write_bytes(got.read_bytes()[:5000])
    proc = subprocess.run(
        [*check, "--npz", str(bad), "--out", str(tmp_path / "bad.json")], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2 and "corrupt or truncated" in proc.stderr and not (tmp_path / "bad.json").exists()
