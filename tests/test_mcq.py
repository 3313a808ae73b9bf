from collections import Counter

import numpy as np
import pytest

from medbridge import MedbridgeError
from medbridge.data.mcq import RETINA_GRADES, balanced_indices, check_items, make_items
from medbridge.data.medmnist import DATASETS, dataset_info, load_split, npz_name


@pytest.mark.parametrize("flag", DATASETS)
def test_items_follow_labels_and_info(flag, synthetic_dir):
    path = synthetic_dir / npz_name(flag, 64)
    items = make_items(flag, path, "test", per_class=2, seed=0, chest="findings_only")  # the synthetic twin has
    info = dataset_info(flag)  # no image without a finding; with_no_finding: tests/test_paper_arithmetic.py
    _, labels = load_split(path, flag, "test")
    for it in items:
        assert list(it["options"].values()) == list(info.labels)  # options = INFO label names, fixed order
        assert list(it["options"]) == [chr(65 + i) for i in range(info.n_classes)]
        lab = labels[it["images"][0]["index"]]
        true = int(lab.argmax()) if info.multi_label else int(lab[0])
        assert it["options"][it["answer"]] == info.labels[true]
        if info.multi_label:  # ChestMNIST rule: only single-finding images
            assert lab.sum() == 1
        assert it["modality"] == info.modality
    single = labels.sum(1) == 1 if info.multi_label else np.ones(len(labels), bool)
    classes = labels.argmax(1) if info.multi_label else labels[:, 0]
    available = Counter(classes[single].tolist())
    counts = Counter(it["label"] for it in items)
    # balanced: the same count for every class, capped by per_class and by the smallest class
    assert counts == {c: min(2, min(available.values())) for c in available}


def _breast_npz(path, n_benign: int, n_malignant: int):
    """A BreastMNIST-layout file whose test split holds n_benign of class 1 and n_malignant of class 0."""
    n = n_benign + n_malignant
    labels = np.array([[1]] * n_benign + [[0]] * n_malignant, dtype=np.uint8)
    arrays = {
        f"{s}_{k}": (np.zeros((n, 8, 8), np.uint8) if k == "images" else labels)
        for s in ("train", "val", "test")
        for k in ("images", "labels")
    }
    np.savez(path, **arrays)
    return path


def test_balanced_means_equal_counts(tmp_path):
    # BreastMNIST's real test split: 42 malignant, 114 benign; per_class 100 must not give 100 vs 42
    path = _breast_npz(tmp_path / "breastmnist_8.npz", 114, 42)
    equal = Counter(it["label"] for it in make_items("breastmnist", path, "test", 100, seed=0))
    assert equal == {0: 42, 1: 42}
    small = Counter(it["label"] for it in make_items("breastmnist", path, "test", 10, seed=0))
    assert small == {0: 10, 1: 10}
    capped = Counter(it["label"] for it in make_items("breastmnist", path, "test", 100, seed=0, balance="capped"))
    assert capped == {0: 42, 1: 100}  # the training-set rule: up to per_class each
    # seeded: same seed same images, another seed other images of the larger class
    a = balanced_indices(np.array([0] * 5 + [1] * 50), 100, np.random.default_rng(1))
    b = balanced_indices(np.array([0] * 5 + [1] * 50), 100, np.random.default_rng(1))
    c = balanced_indices(np.array([0] * 5 + [1] * 50), 100, np.random.default_rng(2))
    assert (a == b).all() and len(a) == 10 and not (a == c).all()
    with pytest.raises(MedbridgeError, match="mcq.balance"):
        balanced_indices(np.array([0, 1]), 1, np.random.default_rng(0), "even")


def test_retina_options_digits_or_grades(synthetic_dir):
    path = synthetic_dir / npz_name("retinamnist", 64)
    digits = make_items("retinamnist", path, "test", 2, seed=0)
    assert list(digits[0]["options"].values()) == ["0", "1", "2", "3", "4"]  # medmnist INFO as is
    grades = make_items("retinamnist", path, "test", 2, seed=0, retina_options="grades")
    assert list(grades[0]["options"].values()) == list(RETINA_GRADES)
    assert [g["label"] for g in grades] == [d["label"] for d in digits]  # same images, same answers
    assert all(
        g["answer"] == d["answer"] and g["answer_text"].endswith(f"(grade {d['answer_text']})")
        for g, d in zip(grades, digits)
    )
    other = make_items("bloodmnist", synthetic_dir / npz_name("bloodmnist", 64), "test", 1, 0, retina_options="grades")
    assert list(other[0]["options"].values()) == list(dataset_info("bloodmnist").labels)  # only RetinaMNIST changes
    with pytest.raises(MedbridgeError, match="retina_options"):
        make_items("retinamnist", path, "test", 2, seed=0, retina_options="names")


def test_items_are_seed_stable_and_shuffle_options(synthetic_dir):
    path = synthetic_dir / npz_name("bloodmnist", 64)
    a = make_items("bloodmnist", path, "test", 2, seed=5, option_order="shuffled")
    b = make_items("bloodmnist", path, "test", 2, seed=5, option_order="shuffled")
    c = make_items("bloodmnist", path, "test", 2, seed=6, option_order="shuffled")
    assert a == b and a != c
    assert any(list(it["options"].values()) != list(dataset_info("bloodmnist").labels) for it in a)
    assert all(it["options"][it["answer"]] == it["answer_text"] for it in a)


def test_check_items_rejects_empty_and_bad_answers():
    with pytest.raises(MedbridgeError, match="no items"):
        check_items([], "x.jsonl")
    bad = {"id": "q", "question": "?", "options": {"A": "a", "B": "b"}, "answer": "C", "images": []}
    with pytest.raises(MedbridgeError, match="answers 'C'"):
        check_items([bad], "x.jsonl")
