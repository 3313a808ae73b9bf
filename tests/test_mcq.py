from collections import Counter

import numpy as np
import pytest

from medbridge.data.mcq import check_items, make_items
from medbridge.data.medmnist import DATASETS, dataset_info, load_split, npz_name
from medbridge import MedbridgeError


@pytest.mark.parametrize("flag", DATASETS)
def test_items_follow_labels_and_info(flag, synthetic_dir):
    path = synthetic_dir / npz_name(flag, 64)
    items = make_items(flag, path, "test", per_class=2, seed=0)
    info = dataset_info(flag)
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
    assert counts == {c: min(2, n) for c, n in available.items()}  # balanced: min(per_class, available) each


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
