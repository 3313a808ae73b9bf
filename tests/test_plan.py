"""`medbridge plan`: job counts and GPU-hour estimates from a config."""

from __future__ import annotations

import copy
import json
import math

import pytest
import yaml

from medbridge import MedbridgeError
from medbridge.cli import main
from medbridge.config import validate_config
from medbridge.data.medmnist import medmnist_info
from medbridge.plan import Assumptions, image_tokens, n_items, plan

from .conftest import ROOT


@pytest.fixture(scope="module")
def paper() -> dict:
    return validate_config(yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))


def rows(result: dict) -> dict[tuple[str, str], dict]:
    return {(r["rule"], r["part"]): r for r in result["rows"]}


def test_image_tokens_follow_qwen_resize():
    # 224 px under min_pixels = 1280 * 28 * 28: scaled up by sqrt(20), rounded up to 28 px -> 36 x 36 tokens
    side = math.ceil(224 * math.sqrt(1003520 / 224**2) / 28)
    assert image_tokens(224, 1003520, 12845056) == side * side == 1296
    assert image_tokens(224, None, None) == 8 * 8  # within the default bounds: 224 / 28 = 8 per side


def test_items_are_balanced_and_capped_by_the_split(paper):
    assert n_items(paper, "organamnist", "test", 100) == 100 * 11
    retina_test = medmnist_info()["retinamnist"]["n_samples"]["test"]
    assert n_items(paper, "retinamnist", "test", 1000) == retina_test < 1000 * 5
    assert n_items(paper, "tissuemnist", "train", None) == medmnist_info()["tissuemnist"]["n_samples"]["train"]


def test_paper_job_counts_follow_the_config(paper):
    result = plan(paper, model_sizes={"medvlm_r1": 2})
    r = rows(result)
    n_models, n_data = len(paper["evaluate"]["models"]), len(paper["data"]["datasets"])
    assert r["generate", "RQ2"]["jobs"] == n_models * n_data
    assert r["features", "RQ1"]["jobs"] == n_models
    rq3 = paper["rq3"]
    n_rq3 = len(rq3["inits"]) * len(rq3["train_tasks"])
    assert r["grpo_model", "RQ3 + grpo roles"]["jobs"] == n_rq3 + 1  # + `ours`, trained on the balanced PMC subset
    targets = {t: {d for s, d in sum(rq3["pairs"].values(), []) if s == t} for t in rq3["train_tasks"]}
    assert r["generate", "RQ3"]["jobs"] == len(rq3["inits"]) * sum(map(len, targets.values()))
    assert r["generate", "Table 3"]["jobs"] == len(paper["vqa"]["models"]) * len(paper["vqa"]["benchmarks"])
    assert r["score", "VLM judge"]["jobs"] == sum(r["generate", p]["jobs"] for p in ("RQ2", "RQ3", "Table 3"))
    assert result["total_gpu_hours"] < result["total_gpu_hours_at_budget"]
    assert not any("medvlm_r1" in n for n in result["notes"])  # its size was given
    assert any("pmc_label" in n for n in result["notes"])  # its question count was not


def test_generation_hours_by_hand(paper):
    """One model, one dataset: the estimate equals the documented formula worked out by hand."""
    cfg = copy.deepcopy(paper)
    cfg["data"]["datasets"] = ["breastmnist"]
    cfg["evaluate"].update(models=["base"], n_samples=4, k=[1, 2, 4])
    for key in ("rq3", "vqa", "probe"):
        cfg.pop(key)
    cfg["models"] = {"base": cfg["models"]["base"], "judge": cfg["models"]["judge"]}
    a = Assumptions()
    gen = rows(plan(cfg, a))["generate", "RQ2"]
    items, budget = min(100 * 2, medmnist_info()["breastmnist"]["n_samples"]["test"]), 2048
    prefill = 2 * 7e9 * items * (1296 + a.prompt_tokens) / (a.prefill_tflops * 1e12)
    decode = items * (1 + 4) * budget / a.decode_tokens_per_s  # 7B = the reference size
    assert gen["jobs"] == 1
    assert gen["gpu_hours_at_budget"] == pytest.approx((prefill + decode) / 3600)
    assert gen["gpu_hours"] == pytest.approx((prefill + decode * a.completion_fraction) / 3600)
    # a 32B model decodes 32/7 times slower (memory-bound), so the same work costs more
    cfg["models"]["base"] = {"source": "hub", "id": "Qwen/Qwen2.5-VL-32B-Instruct"}
    big = rows(plan(cfg, a))["generate", "RQ2"]
    assert big["gpu_hours_at_budget"] == pytest.approx((prefill * 32 / 7 + decode * 32 / 7) / 3600)


def test_model_sizes_from_names_overrides_and_notes(paper):
    result = plan(paper)
    assert any("'medvlm_r1'" in n and "--model-size" in n for n in result["notes"])
    cfg = copy.deepcopy(paper)
    cfg["models"]["base"] = {"source": "local", "path": "/models/my-vlm"}
    with_default = rows(plan(cfg))["generate", "RQ2"]["gpu_hours"]
    halved = rows(plan(cfg, Assumptions(decode_tokens_per_s=5000)))["generate", "RQ2"]["gpu_hours"]
    assert halved < with_default
    sized = rows(plan(cfg, model_sizes={"base": 70}))["generate", "RQ2"]["gpu_hours"]
    assert sized > with_default


def test_rule_judge_costs_no_gpu(tiny_cfg):
    r = rows(plan(tiny_cfg))
    assert r["score", "rule judge (CPU)"]["gpu_hours"] == 0
    assert r["sft_model", "bridge"]["jobs"] == 1  # the tiny profile trains its own sft role


def test_cli_prints_and_writes_json(tmp_path, capsys):
    out = tmp_path / "plan.json"
    code = main(["plan", "--config", str(ROOT / "config" / "paper.yaml"), "--model-size", "medvlm_r1=2",
                 "--pmc-questions", "8000", "--decode-tokens-per-s", "3000", "--json", str(out)])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "generate" in text and "decode_tokens_per_s = 3000" in text and "pmc_label" in text
    data = json.loads(out.read_text())
    assert data["assumptions"]["decode_tokens_per_s"] == 3000
    assert {r["rule"] for r in data["rows"]} >= {"generate", "score", "features", "grpo_model", "pmc_label"}


def test_cli_rejects_bad_input(capsys):
    assert main(["plan", "--config", str(ROOT / "config" / "paper.yaml"), "--model-size", "medvlm_r1"]) == 2
    assert "ROLE=BILLIONS" in capsys.readouterr().err
    assert main(["plan", "--config", str(ROOT / "config" / "paper.yaml"), "--completion-fraction", "1.5"]) == 2
    with pytest.raises(MedbridgeError, match="no model role"):
        from medbridge.plan import _Planner

        _Planner(yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()), Assumptions(), {}, None).params_b("x")


def test_table3_uses_its_own_item_caps_samples_and_pmc_pool(paper):
    cfg = copy.deepcopy(paper)
    benchmarks, models = cfg["vqa"]["benchmarks"], cfg["vqa"]["models"]
    benchmarks[0]["max_items"] = 10  # a per-benchmark cap beats vqa.max_items
    cfg["vqa"].update(n_samples=2)
    cfg["vqa"]["pmc"]["pool_size"] = 5000
    r = rows(plan(cfg, model_sizes={"medvlm_r1": 2}))
    items = len(models) * (10 + cfg["vqa"]["max_items"] * (len(benchmarks) - 1))
    assert r["generate", "Table 3"]["basis"].startswith(f"{items} items x (greedy + 2 samples)")
    assert r["pmc_label", "Sec. 4"]["basis"].startswith("5000 questions")
