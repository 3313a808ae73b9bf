"""RQ1 / Table 1: vision-tower features, the linear probe, and the Table 1 verb."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from medbridge import MedbridgeError
from medbridge.cli import main
from medbridge.data import medmnist
from medbridge.data.mcq import make_items
from medbridge.io import save_npz, write_json
from medbridge.probe import features as feat
from medbridge.probe.linear import run_probe

from .conftest import consistent

DATASETS = ["organamnist", "chestmnist"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_cfg, tiny_model_dir):
    """The session's tiny Qwen2.5-VL, two small synthetic MedMNIST files, and a config using them."""
    root = tmp_path_factory.mktemp("probe")
    npz = {}
    for d in DATASETS:
        npz[d] = root / f"{d}_28.npz"
        save_npz(npz[d], **medmnist.make_synthetic(d, 28, {"train": 40, "val": 16, "test": 40}, 0.3, seed=0))
    cfg = copy.deepcopy(tiny_cfg)
    cfg["run_name"] = "probe-test"
    cfg["models"] = {"base": {"source": "local", "path": str(tiny_model_dir)}}
    cfg["evaluate"]["models"] = ["base"]
    cfg["mcq"]["per_class"] = 2
    cfg["probe"] |= {"train_per_class": 3, "batch_size": 7}  # 7: batches that do not divide the splits
    consistent(cfg)
    return {"root": root, "cfg": cfg, "npz": npz}


def _jobs(setup, out_dir: Path, datasets=DATASETS):
    return [(d, setup["npz"][d], out_dir / f"{d}.npz") for d in datasets]


def test_features_shape_dtype_and_determinism(setup, tmp_path):
    cfg, spec = setup["cfg"], setup["cfg"]["tiny_model"]
    written = feat.extract_features(cfg, "base", _jobs(setup, tmp_path / "a"))
    assert len(written) == 2
    arrays, meta = feat.load_features(tmp_path / "a" / "organamnist.npz")
    assert meta["features"] == "merger" and meta["dim"] == spec["hidden_size"]  # merger projects to the LM width
    n_classes = medmnist.dataset_info("organamnist").n_classes
    assert arrays["train_features"].shape == (3 * n_classes, spec["hidden_size"])  # train_per_class cap
    assert arrays["val_features"].shape == (16, spec["hidden_size"])
    for split in medmnist.SPLITS:
        assert arrays[f"{split}_features"].dtype == np.float32
        assert np.isfinite(arrays[f"{split}_features"]).all()
        assert arrays[f"{split}_labels"].dtype == np.int64
    # Pooling must keep images apart: different images, different vectors.
    assert len(np.unique(arrays["test_features"].round(5), axis=0)) == len(arrays["test_features"])

    # The test split is the MCQ items' balanced subset: same images, same labels.
    items = make_items("organamnist", setup["npz"]["organamnist"], "test", cfg["mcq"]["per_class"], cfg["seed"])
    assert arrays["test_indices"].tolist() == sorted(it["images"][0]["index"] for it in items)
    assert arrays["test_labels"].tolist() == [
        it["label"] for it in sorted(items, key=lambda i: i["images"][0]["index"])
    ]

    # ChestMNIST: only single-finding images, labelled by that finding (14-way).
    chest, _ = feat.load_features(tmp_path / "a" / "chestmnist.npz")
    for split in medmnist.SPLITS:
        _, labels = medmnist.load_split(setup["npz"]["chestmnist"], "chestmnist", split)
        rows = labels[chest[f"{split}_indices"]]
        assert (rows.sum(1) == 1).all()
        assert (rows.argmax(1) == chest[f"{split}_labels"]).all()

    # Deterministic: a second extraction (fresh model load) gives the same numbers.
    feat.extract_features(cfg, "base", _jobs(setup, tmp_path / "b", ["organamnist"]))
    again, _ = feat.load_features(tmp_path / "b" / "organamnist.npz")
    for key in arrays:
        np.testing.assert_array_equal(arrays[key], again[key])


def test_vit_features_are_the_pre_merger_width(setup, tmp_path):
    cfg = copy.deepcopy(setup["cfg"])
    cfg["probe"]["features"] = "vit"
    feat.extract_features(cfg, "base", _jobs(setup, tmp_path, ["organamnist"]))
    arrays, meta = feat.load_features(tmp_path / "organamnist.npz")
    assert meta["features"] == "vit"
    assert arrays["test_features"].shape[1] == cfg["tiny_model"]["vision_hidden_size"]


def test_feature_cache_is_reused_and_invalidated_by_settings(setup, tmp_path, monkeypatch):
    cfg = setup["cfg"]
    jobs = _jobs(setup, tmp_path, ["organamnist"])
    feat.extract_features(cfg, "base", jobs)
    out = tmp_path / "organamnist.npz"
    stamp = out.stat().st_mtime_ns

    def no_model(*a, **k):
        raise AssertionError("the model was loaded although every output was cached")

    monkeypatch.setattr(feat, "_load_tower", no_model)
    assert feat.extract_features(cfg, "base", jobs) == []
    assert out.stat().st_mtime_ns == stamp
    other = copy.deepcopy(cfg)
    other["probe"]["train_per_class"] = 2  # another subset: the cache must not be reused
    with pytest.raises(AssertionError, match="model was loaded"):
        feat.extract_features(other, "base", jobs)


def _blobs(n_per_class: int, n_classes: int, dim: int, seed: int, sep: float = 3.0):
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(123).normal(0, sep, (n_classes, dim))
    y = np.repeat(np.arange(n_classes), n_per_class)
    x = centers[y] + rng.normal(0, 1, (len(y), dim)) + 5.0  # offset: BatchNorm must centre it
    return x.astype(np.float32), y.astype(np.int64)


def _arrays(shuffle_train: bool = False):
    xtr, ytr = _blobs(100, 4, 16, seed=1)
    xva, yva = _blobs(30, 4, 16, seed=2)
    xte, yte = _blobs(100, 4, 16, seed=3)
    if shuffle_train:
        ytr = np.random.default_rng(0).permutation(ytr)
        yva = np.random.default_rng(1).permutation(yva)
    return {
        "train_features": xtr,
        "train_labels": ytr,
        "val_features": xva,
        "val_labels": yva,
        "test_features": xte,
        "test_labels": yte,
    }


@pytest.mark.parametrize("head", ["sgd", "logreg"])
def test_probe_separable_features_and_shuffled_labels(setup, head):
    cfg = copy.deepcopy(setup["cfg"])
    cfg["probe"] |= {"head": head, "probe_batch_size": 64}
    meta = {"model": "m", "dataset": "d", "features": "merger"}
    good = run_probe(_arrays(), meta, cfg, n_classes=4)
    assert good["accuracy"] >= 0.95 and good["n"] == 400 and good["head"] == head
    assert (good["epoch"] is not None) == (head == "sgd") and (good["C"] is not None) == (head == "logreg")
    shuffled = run_probe(_arrays(shuffle_train=True), meta, cfg, n_classes=4)
    assert shuffled["accuracy"] < 0.4  # chance is 0.25
    assert run_probe(_arrays(), meta, cfg, n_classes=4)["accuracy"] == good["accuracy"]  # seeded


def test_sgd_probe_picks_best_val_epoch(setup):
    cfg = copy.deepcopy(setup["cfg"])
    cfg["probe"] |= {"head": "sgd", "probe_batch_size": 64, "epochs": 5}
    r = run_probe(_arrays(), {"dataset": "d"}, cfg, n_classes=4)
    assert len(r["val_curve"]) == 5
    assert r["val_accuracy"] == max(r["val_curve"]) and r["val_curve"][r["epoch"] - 1] == r["val_accuracy"]


def test_probe_rejects_labels_of_another_dataset(setup):
    with pytest.raises(MedbridgeError, match="labels outside"):
        run_probe(_arrays(), {"dataset": "d"}, setup["cfg"], n_classes=3)


def test_features_and_probe_verbs(setup, tmp_path):
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(setup["cfg"]))
    d = "organamnist"
    fpath, ppath = tmp_path / "features" / f"{d}.npz", tmp_path / "probe" / f"{d}.json"
    args = ["--config", str(cfg_path), "--model", "base", "--datasets", d, "--npz", str(setup["npz"][d])]
    assert main(["features", *args, "--out", str(fpath)]) == 0
    assert main(["features", *args, "--out", str(fpath), str(fpath)]) == 2  # unpaired lists: a user error
    assert main(["probe", "--config", str(cfg_path), "--features", str(fpath), "--out", str(ppath)]) == 0
    r = json.loads(ppath.read_text())
    assert r["model"] == "base" and r["dataset"] == d and r["head"] == "sgd"
    assert 0 <= r["accuracy"] <= 1 and r["n"] == r["n_classes"] * setup["cfg"]["mcq"]["per_class"]
    assert r["settings"]["lr"] == 0.1 and r["settings"]["batch_size"] == 1024
    side = json.loads(Path(f"{fpath}.provenance.json").read_text())  # features trace back to the weights loaded
    assert side["models"][0]["weights_sha256"] and side["inputs"][0]["path"] == str(setup["npz"][d])
    assert json.loads(Path(f"{ppath}.provenance.json").read_text())["inputs"][0]["path"] == str(fpath)


def test_table1_verb_on_hand_made_probes(setup, tmp_path):
    cfg_path = tmp_path / "config.yaml"
    cfg = copy.deepcopy(setup["cfg"])
    cfg["models"] = {
        "base": {"source": "hub", "id": "Qwen/Qwen2.5-VL-7B-Instruct"},
        "sft": {"source": "sft", "init": "base"},
    }
    cfg_path.write_text(yaml.safe_dump(consistent(cfg)))
    acc = {
        ("base", "organamnist"): 0.5,
        ("base", "pathmnist"): 0.75,
        ("sft", "organamnist"): 0.625,
        ("sft", "pathmnist"): 1.0,
    }
    paths = []
    for (model, d), a in acc.items():
        p = tmp_path / "probe" / model / f"{d}.json"
        write_json(p, {"model": model, "dataset": d, "accuracy": a, "n": 8, "head": "sgd", "features": "merger"})
        paths.append(str(p))
    csv, md = tmp_path / "t1.csv", tmp_path / "t1.md"
    assert main(["table1", "--config", str(cfg_path), "--probes", *paths, "--csv", str(csv), "--md", str(md)]) == 0
    df = pd.read_csv(csv)
    # Modality order: organamnist (radiology) before pathmnist (microscopy), each with its reported column beside it.
    assert list(df.columns)[4:] == ["organamnist", "organamnist (reported)", "pathmnist", "pathmnist (reported)"]
    base = df.set_index("model").loc["base"]
    assert base["organamnist"] == pytest.approx(50.0) and base["pathmnist"] == pytest.approx(75.0)
    assert base["organamnist (reported)"] == pytest.approx(85.27)  # the paper's number, in its labelled column
    assert base["source"] == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert df.set_index("model").loc["sft", "pathmnist"] == pytest.approx(100.0)
    medvit = df.set_index("model").loc["MedViT-v2 (reported)"]
    assert pd.isna(medvit["organamnist"]) and medvit["organamnist (reported)"] == pytest.approx(97.3)
    text = md.read_text()
    assert "(reported)" in text and "MedViT-v2 (reported)" in text and "nan" not in text
    assert "radiology: organamnist" in text and "microscopy: pathmnist" in text


def test_authors_augmentation_fresh_features_per_epoch(setup, tmp_path):
    """probe.augment authors: per-epoch RandomResizedCrop + flip train features, Resize + CenterCrop eval features."""
    from PIL import Image

    cfg = copy.deepcopy(setup["cfg"])
    cfg["probe"] |= {"augment": "authors", "crop_size": 28, "resize_size": 32, "epochs": 3}
    jobs = _jobs(setup, tmp_path / "a", ["organamnist"])
    feat.extract_features(cfg, "base", jobs)
    aug, meta = feat.load_features(jobs[0][2])
    feat.extract_features(cfg, "base", _jobs(setup, tmp_path / "b", ["organamnist"]))
    again, _ = feat.load_features(tmp_path / "b" / "organamnist.npz")
    plain_cfg = copy.deepcopy(setup["cfg"])
    plain_cfg["probe"]["augment"] = "none"
    feat.extract_features(plain_cfg, "base", _jobs(setup, tmp_path / "c", ["organamnist"]))
    plain, _ = feat.load_features(tmp_path / "c" / "organamnist.npz")
    n, d = plain["train_features"].shape
    assert aug["train_features"].shape == (3, n, d) and aug["test_features"].shape == plain["test_features"].shape
    assert all(np.array_equal(aug[k], again[k]) for k in aug)  # seeded: the same crops on a rerun
    assert not np.allclose(aug["train_features"][0], aug["train_features"][1])  # every epoch sees new crops
    assert not np.allclose(aug["train_features"][0], plain["train_features"])
    assert not np.allclose(aug["test_features"], plain["test_features"])  # eval: resized and centre-cropped
    assert meta["settings"]["augment"] == "authors" and meta["settings"]["epochs"] == 3
    # the eval transform is Resize(32, bicubic) then the centre 28 x 28, as linprobe.py's tfm_val
    img = Image.fromarray((np.arange(28 * 28 * 3) % 251).astype(np.uint8).reshape(28, 28, 3))
    by_hand = img.resize((32, 32), Image.BICUBIC).crop((2, 2, 30, 30))
    assert np.abs(np.asarray(feat.eval_transform(meta["settings"])(img), int) - np.asarray(by_hand, int)).max() <= 1
    # the probe trains epoch e on set e; a features file made for other epochs is refused
    result = run_probe(aug, meta, cfg, medmnist.dataset_info("organamnist").n_classes)
    assert result["augmented_epochs"] == 3 and 0 <= result["accuracy"] <= 1 and len(result["val_curve"]) == 3
    cfg["probe"]["epochs"] = 4
    with pytest.raises(MedbridgeError, match="augmented epochs"):
        run_probe(aug, meta, cfg, medmnist.dataset_info("organamnist").n_classes)
    cfg["probe"]["augment"] = "flips"
    with pytest.raises(MedbridgeError, match="probe.augment"):
        feat.augment_settings(cfg)


def test_dataloader_workers_give_the_same_features(setup, tmp_path):
    """Images prepared in 2 DataLoader processes (the job's threads) give exactly the features of 0: each image's
    random crop is seeded by its position, not by which worker drew it or when."""
    cfg = copy.deepcopy(setup["cfg"])
    cfg["probe"] |= {"augment": "authors", "crop_size": 28, "resize_size": 32, "epochs": 2}
    serial, parallel = _jobs(setup, tmp_path / "w0", ["organamnist"]), _jobs(setup, tmp_path / "w2", ["organamnist"])
    feat.extract_features(cfg, "base", serial, workers=0)
    feat.extract_features(cfg, "base", parallel, workers=2)
    a, _ = feat.load_features(serial[0][2])
    b, _ = feat.load_features(parallel[0][2])
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.allclose(a["train_features"][0], a["train_features"][1])  # the crops still differ by epoch
