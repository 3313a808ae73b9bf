"""Bad input gets a clear error naming the problem and the fix, a non-zero exit, and nothing corrupted."""

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from medbridge import MedbridgeError
from medbridge.data.medmnist import make_synthetic, npz_name
from medbridge.io import save_npz, write_jsonl, write_text

from .conftest import ROOT


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "medbridge.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture()
def cfg_file(tmp_path, tiny_cfg):
    def write(cfg=None, **changes):
        cfg = json.loads(json.dumps(cfg or tiny_cfg))
        for dotted, value in changes.items():
            node = cfg
            *keys, last = dotted.split("__")
            for k in keys:
                node = node[k]
            node[last] = value
        path = tmp_path / "cfg.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return str(path)

    return write


def assert_fails(proc, *needles):
    assert proc.returncode != 0
    for n in needles:
        assert n in proc.stderr, proc.stderr


def test_unknown_config_key(cfg_file):
    assert_fails(
        cli("validate-config", "--config", cfg_file(evaluate__temprature=0.5)), "unknown key(s) ['temprature']"
    )


def test_wrong_type(cfg_file):
    assert_fails(cli("validate-config", "--config", cfg_file(evaluate__n_samples="sixteen")), "should be of type")


def test_unknown_model_role(cfg_file):
    assert_fails(
        cli("validate-config", "--config", cfg_file(evaluate__models=["base", "gpt"])), "unknown model role 'gpt'"
    )


def test_unknown_dataset(cfg_file, tmp_path):
    assert_fails(
        cli("data", "--config", cfg_file(), "--dataset", "cifar10", "--out", str(tmp_path / "x.npz")),
        "unknown dataset 'cifar10'",
    )


def test_missing_npz(cfg_file, tmp_path):
    proc = cli(
        "items",
        "--config",
        cfg_file(),
        "--dataset",
        "organamnist",
        "--npz",
        str(tmp_path / "none.npz"),
        "--split",
        "test",
        "--out",
        str(tmp_path / "items.jsonl"),
    )
    assert_fails(proc, "is missing", "snakemake")
    assert not (tmp_path / "items.jsonl").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_npz(cfg_file, tmp_path, synthetic_dir, damage):
    good = (synthetic_dir / npz_name("organamnist", 64)).read_bytes()
    bad = tmp_path / "organamnist_64.npz"
    bad.write_bytes(good[:1000] if damage == "truncated" else b"not a zip file at all")
    proc = cli(
        "items",
        "--config",
        cfg_file(),
        "--dataset",
        "organamnist",
        "--npz",
        str(bad),
        "--split",
        "test",
        "--out",
        str(tmp_path / "items.jsonl"),
    )
    assert_fails(proc, "corrupt or truncated", "remake")


def test_labels_out_of_range_and_wrong_image_shape(cfg_file, tmp_path):
    arrays = make_synthetic("breastmnist", 64, {"train": 4, "val": 4, "test": 4}, 0.3, 0)
    arrays["test_labels"][1, 0] = 7
    save_npz(tmp_path / "labels.npz", **arrays)
    proc = cli(
        "items",
        "--config",
        cfg_file(),
        "--dataset",
        "breastmnist",
        "--npz",
        str(tmp_path / "labels.npz"),
        "--split",
        "test",
        "--out",
        str(tmp_path / "i.jsonl"),
    )
    assert_fails(proc, "labels out of range", "allows 0..1")
    arrays = make_synthetic("breastmnist", 64, {"train": 4, "val": 4, "test": 4}, 0.3, 0)
    arrays["test_images"] = np.zeros((4, 64, 64, 3), np.uint8)
    save_npz(tmp_path / "shape.npz", **arrays)
    proc = cli(
        "items",
        "--config",
        cfg_file(),
        "--dataset",
        "breastmnist",
        "--npz",
        str(tmp_path / "shape.npz"),
        "--split",
        "test",
        "--out",
        str(tmp_path / "i.jsonl"),
    )
    assert_fails(proc, "needs uint8 (4, 64, 64)")


def test_empty_item_set_and_broken_line(cfg_file, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    proc = cli(
        "generate", "--config", cfg_file(), "--model", "base", "--items", str(empty), "--out", str(tmp_path / "g.jsonl")
    )
    assert_fails(proc, "holds no items")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "a"}\n{"id": \n')
    proc = cli(
        "generate",
        "--config",
        cfg_file(),
        "--model",
        "base",
        "--items",
        str(broken),
        "--out",
        str(tmp_path / "g.jsonl"),
    )
    assert_fails(proc, "broken.jsonl:2 is not valid JSON")
    assert not (tmp_path / "g.jsonl").exists()


def test_junk_model_output_counts_as_wrong_never_crashes():
    from medbridge.generate import Completion, SamplingSettings
    from medbridge.generate.run import record
    from medbridge.score.metrics import compute_metrics

    item = {"id": "q", "question": "?", "options": {"A": "x", "B": "y"}, "answer": "A", "images": []}
    junk = ["", "\x00\x01\ufffd", "<answer></answer>", "<think>never closes", "<answer>Q</answer>", "A" * 5000]
    row = record(item, Completion(junk[0], junk[1:]), SamplingSettings(5, 1.0, 1.0, 8, "eval"))
    m = compute_metrics([row], [1, 5], n_boot=0, seed=0)
    assert m["acc1"] == 0 and m["pass_at_k"]["5"] == 0 and m["format_failure_rate"] == 1


def test_judge_model_unavailable(cfg_with_local_model, tmp_path):
    from medbridge.score.judge import VLMJudge

    row = {
        "id": "q",
        "answer": "A",
        "options": {"A": "x", "B": "y"},
        "greedy": {"text": "maybe", "choice": None, "method": "none", "correct": False},
        "samples": [],
    }
    with pytest.raises(MedbridgeError, match="no `judge` model role"):
        VLMJudge(cfg_with_local_model)([row])
    cfg = json.loads(json.dumps(cfg_with_local_model))
    cfg["models"]["judge"] = {"source": "local", "path": str(tmp_path / "no-such-judge")}
    with pytest.raises(MedbridgeError, match="does not exist"):
        VLMJudge(cfg)([row])


def test_disk_full_on_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    write_text(target, "old contents\n")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)  # the write fails mid-way, as on a full disk
    with pytest.raises(OSError, match="No space left"):
        write_jsonl(target, [{"a": 1}] * 100)
    assert target.read_text() == "old contents\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_model_directory_without_weights(cfg_with_local_model, tmp_path):
    from medbridge.models.registry import load

    empty = tmp_path / "model"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    cfg = json.loads(json.dumps(cfg_with_local_model))
    cfg["models"]["base"] = {"source": "local", "path": str(empty)}
    with pytest.raises(MedbridgeError, match="no config.json or no \\*.safetensors"):
        load(cfg, "base")


def test_relative_path_escaping_the_project(cfg_file):
    proc = cli("validate-config", "--config", cfg_file(models__base={"source": "local", "path": "../../etc"}))
    assert_fails(proc, "leaves the project directory")


def test_trust_remote_code_only_for_allow_listed(tiny_cfg):
    from medbridge.models.registry import resolve

    cfg = json.loads(json.dumps(tiny_cfg))
    cfg["models"]["x"] = {"source": "hub", "id": "org/custom-vlm"}
    assert resolve(cfg, "x").trust_remote_code is False
    cfg["trust_remote_code_allowlist"] = ["org/custom-vlm"]
    assert resolve(cfg, "x").trust_remote_code is True
