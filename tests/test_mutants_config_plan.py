"""Config at its edges and the plan's cost formulas worked out by hand for one small config (issue #25)."""

from __future__ import annotations

import copy

import pytest
import yaml

from medbridge import MedbridgeError
from medbridge.config import validate_config
from medbridge.data.medmnist import medmnist_info
from medbridge.plan import Assumptions, plan

from .conftest import ROOT


def _with(cfg: dict, **evaluate) -> dict:
    out = copy.deepcopy(cfg)
    out["evaluate"].update(evaluate)
    return out


def test_k_may_equal_n_samples_but_not_exceed_it(tiny_cfg):
    n = tiny_cfg["evaluate"]["n_samples"]
    assert validate_config(_with(tiny_cfg, k=[1, n]))["evaluate"]["k"] == [1, n]
    with pytest.raises(MedbridgeError, match=f"k={n + 1}"):
        validate_config(_with(tiny_cfg, k=[1, n + 1]))
    with pytest.raises(MedbridgeError, match="Pass@k needs n >= k"):
        validate_config(_with(tiny_cfg, k=[n + 1, 1]))  # the largest k counts, wherever it stands


@pytest.mark.parametrize(
    "spec,expect",
    [({"source": "hub"}, "source hub needs an `id`"),
     ({"source": "hub", "path": "models/x"}, "source hub needs an `id`"),  # a path does not stand in for an id
     ({"source": "local"}, "source local needs a `path`"),
     ({"source": "local", "id": "org/x"}, "source local needs a `path`")],
)  # fmt: skip
def test_roles_missing_id_or_path_are_rejected(tiny_cfg, spec, expect):
    cfg = copy.deepcopy(tiny_cfg)
    cfg["models"]["extra"] = spec
    with pytest.raises(MedbridgeError, match=expect) as err:
        validate_config(cfg)
    assert "models.extra" in str(err.value)


def test_roles_with_id_or_path_are_accepted(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg)
    cfg["models"]["hubbed"] = {"source": "hub", "id": "org/x"}
    cfg["models"]["local"] = {"source": "local", "path": "models/x"}
    assert set(validate_config(cfg)["models"]) >= {"hubbed", "local"}


# ---- the plan, by hand ---------------------------------------------------------------------------------------------

BUDGET = 2048  # paper evaluate.max_new_tokens and train.grpo.max_completion_length (asserted below)
IMG = 1296  # 224 px under the paper's min_pixels: 36 x 36 LLM tokens (tests/test_plan.py derives it)


@pytest.fixture(scope="module")
def small() -> dict:
    """The paper config cut to one dataset (breastmnist, 2 classes), a 7B base, the 32B judge; nothing else runs."""
    cfg = validate_config(yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))
    cfg["data"]["datasets"] = ["breastmnist"]
    cfg["evaluate"].update(models=["base"], n_samples=4, k=[1, 2, 4], backend="vllm", judge="vlm")
    for key in ("rq3", "vqa", "probe", "recipe"):
        cfg.pop(key)
    cfg["models"] = {"base": {"source": "hub", "id": "Qwen/Qwen2.5-VL-7B-Instruct"},
                     "judge": {"source": "hub", "id": "Qwen/Qwen2.5-VL-32B-Instruct"}}  # fmt: skip
    assert cfg["evaluate"]["max_new_tokens"] == BUDGET and cfg["train"]["grpo"]["max_completion_length"] == BUDGET
    return cfg


def _rows(result: dict) -> dict:
    return {r["rule"]: r for r in result["rows"]}


def _hours(flops_per_token: float, params_b: float, tokens: float, tflops: float) -> float:
    return flops_per_token * params_b * 1e9 * tokens / (tflops * 1e12) / 3600


def test_judge_hours_by_hand(small):
    """score (evaluate.judge vlm): the 32B judge re-reads judge_fraction of the 1 + n responses of every item (image,
    prompt and the response as prefill) and writes judge_output_tokens per verdict; it loads once and starts vLLM."""
    a = Assumptions()
    items = min(100 * 2, medmnist_info()["breastmnist"]["n_samples"]["test"])
    judged = a.judge_fraction * (1 + 4) * items

    def hours(completion):
        prefill = _hours(2, 32, judged * (IMG + a.prompt_tokens + completion), a.prefill_tflops)
        decode = judged * a.judge_output_tokens / (a.decode_tokens_per_s * a.reference_params_b / 32) / 3600
        return prefill + decode

    fixed = (32 * a.load_s_per_b + a.vllm_start_s) / 3600
    score = _rows(plan(small, a))["score"]
    assert score["jobs"] == 1
    assert score["fixed_gpu_hours"] == pytest.approx(fixed)
    assert score["gpu_hours_at_budget"] == pytest.approx(hours(BUDGET) + fixed)
    assert score["gpu_hours"] == pytest.approx(hours(BUDGET * a.completion_fraction) + fixed)
    rule = copy.deepcopy(small)
    rule["evaluate"]["judge"] = "rule"  # answer extraction on CPU: no GPU row
    assert "score" not in _rows(plan(rule, a))


@pytest.mark.parametrize("epochs", [1, 3])
def test_sft_hours_by_hand(small, epochs):
    """sft_model: 6 x params x tokens of training, tokens = examples x epochs x (image + prompt + target); one load."""
    a, cfg = Assumptions(), copy.deepcopy(small)
    cfg["models"]["tuned"] = {"source": "sft", "init": "base"}
    cfg["train"]["sft"].update(datasets=["breastmnist"], epochs=epochs)
    examples = min(cfg["mcq"].get("train_per_class", cfg["mcq"]["per_class"]) * 2,
                   medmnist_info()["breastmnist"]["n_samples"]["train"])  # fmt: skip
    work = _hours(6, 7, examples * epochs * (IMG + a.prompt_tokens + a.sft_target_tokens), a.train_tflops)
    sft = _rows(plan(cfg, a))["sft_model"]
    assert sft["jobs"] == 1
    assert sft["fixed_gpu_hours"] == pytest.approx(7 * a.load_s_per_b / 3600)
    assert sft["gpu_hours"] == pytest.approx(work + 7 * a.load_s_per_b / 3600)
    assert sft["gpu_hours_at_budget"] == pytest.approx(sft["gpu_hours"])  # no generation: no budget


@pytest.mark.parametrize("use_vllm", [False, True])
def test_grpo_reference_forward_by_hand(small, use_vllm):
    """grpo_model: CARE's EMA reference (and a KL reference, beta > 0) each cost one more forward over every rollout
    (2 x params x tokens) and one more model load; with neither, the difference is exactly zero."""
    a, cfg = Assumptions(), copy.deepcopy(small)
    cfg["models"]["rl"] = {"source": "grpo", "init": "base", "task": "breastmnist"}
    grpo = cfg["train"]["grpo"]
    grpo.update(num_generations=4, epochs=1, max_steps=-1, beta=0.0, use_vllm=use_vllm)
    grpo.setdefault("care", {})
    prompts = min(cfg["mcq"].get("train_per_class", cfg["mcq"]["per_class"]) * 2,
                  medmnist_info()["breastmnist"]["n_samples"]["train"])  # fmt: skip

    def grpo_row(care: bool, beta: float) -> dict:
        c = copy.deepcopy(cfg)
        c["train"]["grpo"]["care"]["enabled"] = care
        c["train"]["grpo"]["beta"] = beta
        return _rows(plan(c, a))["grpo_model"]

    def one_reference(completion):
        return _hours(2, 7, prompts * 4 * (IMG + a.prompt_tokens + completion), a.prefill_tflops)

    bare, care, both = grpo_row(False, 0.0), grpo_row(True, 0.0), grpo_row(True, 0.04)
    load = 7 * a.load_s_per_b / 3600
    assert care["fixed_gpu_hours"] - bare["fixed_gpu_hours"] == pytest.approx(load)
    assert care["gpu_hours_at_budget"] - bare["gpu_hours_at_budget"] == pytest.approx(one_reference(BUDGET) + load)
    assert care["gpu_hours"] - bare["gpu_hours"] == pytest.approx(
        one_reference(BUDGET * a.completion_fraction) + load
    )
    assert both["gpu_hours_at_budget"] - bare["gpu_hours_at_budget"] == pytest.approx(2 * (one_reference(BUDGET) + load))
    assert bare["fixed_gpu_hours"] == pytest.approx(load + (a.vllm_start_s / 3600 if use_vllm else 0))
