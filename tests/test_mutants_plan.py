"""The plan's cost formulas worked out by hand for one small config (issue #25): the judge's, the SFT epochs' and
the reference forwards' terms."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from medbridge.config import validate_config
from medbridge.data.medmnist import medmnist_info
from medbridge.plan import Assumptions, plan

from .conftest import ROOT

BUDGET = 2048  # paper evaluate.max_new_tokens and train.grpo.max_completion_length (asserted below)
IMG = 1296  # 224 px under the paper's min_pixels: 36 x 36 LLM tokens (tests/test_plan.py derives it)


@pytest.fixture(scope="module")
def small() -> dict:
    """The paper config cut to one dataset (breastmnist, 2 classes), a 7B base, the 32B judge; nothing else runs."""
    cfg = validate_config(yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))
    del cfg["evaluate"]["job_hours"]  # one generate job per model (the split: tests/test_plan_bookings.py)
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
    items = 2 * 42  # the paper's subset: both classes at BreastMNIST's smallest test class (Table 1's 84)
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
    examples = min(cfg["mcq"]["train_per_class"] * 2,
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
    (2 x params x tokens) and one more model load; without either, the job is the rollouts (each GPU waits for the
    longest of its batch), their prompts' prefill and the training (6 x params x tokens), worked out whole."""
    a, cfg = Assumptions(), copy.deepcopy(small)
    cfg["models"]["rl"] = {"source": "grpo", "init": "base", "task": "breastmnist"}
    grpo = cfg["train"]["grpo"]
    grpo.update(num_generations=4, epochs=1, max_steps=-1, beta=0.0, use_vllm=use_vllm)
    grpo.setdefault("care", {})
    prompts = min(cfg["mcq"]["train_per_class"] * 2,
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
    assert care["gpu_hours"] - bare["gpu_hours"] == pytest.approx(one_reference(BUDGET * a.completion_fraction) + load)
    assert both["gpu_hours_at_budget"] - bare["gpu_hours_at_budget"] == pytest.approx(
        2 * (one_reference(BUDGET) + load)
    )
    assert bare["fixed_gpu_hours"] == pytest.approx(load + (a.vllm_start_s / 3600 if use_vllm else 0))

    def bare_hours(completion, n=prompts):  # without a reference: rollouts, their prompts' prefill, training
        longest = min(BUDGET, completion / a.completion_fraction * a.longest_fraction)
        waiting = n * 4 / grpo["batch_size"] * longest * a.decode_latency_ms / 1000 / 3600  # 7B: reference
        prefill = _hours(2, 7, n * (IMG + a.prompt_tokens), a.prefill_tflops)
        return waiting + prefill + _hours(6, 7, n * 4 * (IMG + a.prompt_tokens + completion), a.train_tflops)

    assert bare["gpu_hours_at_budget"] == pytest.approx(bare_hours(BUDGET) + bare["fixed_gpu_hours"])
    assert bare["gpu_hours"] == pytest.approx(bare_hours(BUDGET * a.completion_fraction) + bare["fixed_gpu_hours"])
    # max_steps caps the prompts: TRL's step takes batch_size x grad_accum completions, num_generations per prompt
    capped = copy.deepcopy(cfg)
    capped["train"]["grpo"].update(max_steps=3, grad_accum=2)
    capped["train"]["grpo"]["care"]["enabled"] = False
    n = 3 * grpo["batch_size"] * 2 / 4
    assert n < prompts
    row = _rows(plan(capped, a))["grpo_model"]
    assert row["gpu_hours_at_budget"] == pytest.approx(bare_hours(BUDGET, n) + bare["fixed_gpu_hours"])


def test_a_multi_gpu_job_pays_its_fixed_costs_on_every_gpu(small):
    """profiles/slurm gives the judge 2 GPUs: its load and vLLM start are paid twice, in both estimates."""
    a = Assumptions()
    one, two = _rows(plan(small, a))["score"], _rows(plan(small, a, profile=ROOT / "profiles" / "slurm"))["score"]
    fixed = (32 * a.load_s_per_b + a.vllm_start_s) / 3600
    assert two["gpus_per_job"] == 2 and two["fixed_gpu_hours"] == pytest.approx(2 * fixed)
    assert two["gpu_hours"] - one["gpu_hours"] == pytest.approx(fixed)
    assert two["gpu_hours_at_budget"] - one["gpu_hours_at_budget"] == pytest.approx(fixed)


def test_documented_assumptions_are_the_defaults():
    """docs/CLUSTER.md quotes each throughput flag's default, e.g. `--load-s-per-b` (6 s per billion parameters)."""
    text = " ".join((ROOT / "docs" / "CLUSTER.md").read_text().split())
    quoted = dict(re.findall(r"`--([a-z-]+)` \((?:[A-Za-z]+, )?([0-9.]+)", text))  # "(vLLM, 2500 at 7B)" too
    assert len(quoted) >= 7
    defaults = Assumptions()
    for flag, value in quoted.items():
        assert getattr(defaults, flag.replace("-", "_")) == float(value), flag
    assert "a quarter of their token budget" in text and defaults.completion_fraction == 0.25
    assert "0.6 of it" in text and defaults.longest_fraction == 0.6


def test_synthetic_split_sizes_are_what_the_data_verb_writes(tiny_cfg, tmp_path):
    """Without data.synthetic sizes, the plan counts the images `medbridge data` makes by default."""
    import json

    import numpy as np

    from medbridge.cli import main
    from medbridge.plan import split_size

    cfg = copy.deepcopy(tiny_cfg)
    cfg["data"].pop("synthetic", None)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    out = tmp_path / "breastmnist.npz"
    code = main(["data", "--config", str(tmp_path / "cfg.json"), "--dataset", "breastmnist", "--out", str(out)])
    assert code in (0, None)
    arrays = np.load(out)
    for split in ("train", "val", "test"):
        assert split_size(cfg, "breastmnist", split) == len(arrays[f"{split}_labels"])


def test_profile_defaults_apply_to_rules_it_does_not_set(tmp_path):
    from medbridge.plan import profile_requests

    (tmp_path / "config.yaml").write_text(
        "__use_yte__: true\ndefault-resources:\n  runtime: 90\n  gpu: 1\nset-resources:\n  generate:\n    gpu: 2\n"
    )
    got = profile_requests(tmp_path)
    assert got["generate"] == {"gpus": 2, "runtime": 90}
    assert got["features"] == {"gpus": 1, "runtime": 90}


@pytest.mark.parametrize("augment,epochs", [("authors", 20), ("none", 1)])
def test_feature_hours_by_hand(small, augment, epochs):
    """features: the vision tower (vision_params_b) over every probe image's patches, the train images once per
    epoch under the authors' augmentation, the val and eval images once; one load of the model."""
    a, cfg = Assumptions(), copy.deepcopy(small)
    cfg["probe"] = {"augment": augment, "crop_size": 224, "epochs": 20}
    sizes = medmnist_info()["breastmnist"]["n_samples"]
    patches = 8 * 8 * 4  # 224 px within the default pixel bounds: 8 x 8 merged tokens of 2 x 2 patches
    images = sizes["train"] * epochs + sizes["val"] + 2 * 42  # the test subset: the smallest class, both classes
    features = _rows(plan(cfg, a))["features"]
    assert features["jobs"] == 1
    load = 7 * a.load_s_per_b / 3600
    assert features["gpu_hours"] == pytest.approx(
        _hours(2, a.vision_params_b, images * patches, a.prefill_tflops) + load
    )


@pytest.mark.parametrize("care", [None, {}, {"enabled": False}, {"enabled": True}, {"span": "content"}])
def test_the_plan_counts_the_reference_exactly_when_training_runs_care(small, care):
    """train.grpo builds CareSettings from the care section (none: off; a section without `enabled`: on)."""
    from medbridge.train.care import CareSettings

    cfg, a = copy.deepcopy(small), Assumptions()
    cfg["models"]["rl"] = {"source": "grpo", "init": "base", "task": "breastmnist"}
    grpo = cfg["train"]["grpo"]
    grpo.update(beta=0.0, use_vllm=False)
    grpo.pop("care", None)
    if care is not None:
        grpo["care"] = care
    runs_care = CareSettings.from_config(grpo.get("care", {"enabled": False})).enabled  # as medbridge.train.grpo
    fixed = _rows(plan(cfg, a))["grpo_model"]["fixed_gpu_hours"]
    assert fixed == pytest.approx((1 + runs_care) * 7 * a.load_s_per_b / 3600)


def test_benchmark_repeats_are_averaged(tmp_path):
    from medbridge.plan import read_benchmarks

    (tmp_path / "generate").mkdir()
    (tmp_path / "generate" / "base.tsv").write_text("s\th:m:s\n30\t0:00:30\n90\t0:01:30\n")
    assert read_benchmarks(tmp_path) == {"generate": {"base": 60.0}}


def test_the_result_names_its_profile(small):
    assert plan(small, profile=ROOT / "profiles" / "slurm")["profile"] == str(ROOT / "profiles" / "slurm")
    assert plan(small)["profile"] is None


def test_the_tiny_models_size_by_hand(tiny_cfg):
    """The tiny profile's model: embeddings + per layer 4 h^2 (attention) + 3 h i (MLP) parameters; its SFT job
    loads it once, at load_s_per_b per billion."""
    a, t = Assumptions(), tiny_cfg["tiny_model"]
    h, i = t["hidden_size"], t["intermediate_size"]
    params_b = (t["vocab_size"] * h + t["num_hidden_layers"] * (4 * h * h + 3 * h * i)) / 1e9
    assert tiny_cfg["models"]["base"]["source"] == "tiny"
    sft = _rows(plan(tiny_cfg, a))["sft_model"]
    assert sft["fixed_gpu_hours"] == pytest.approx(a.load_s_per_b * params_b / 3600)


def test_max_steps_caps_only_when_set_and_unknown_tasks_skip_one_run(small):
    a, cfg = Assumptions(), copy.deepcopy(small)
    cfg["models"]["rl"] = {"source": "grpo", "init": "base", "task": "breastmnist"}
    grpo = cfg["train"]["grpo"]
    grpo.pop("max_steps", None)
    unset = _rows(plan(cfg, a))["grpo_model"]["gpu_hours"]
    grpo["max_steps"] = -1
    assert _rows(plan(cfg, a))["grpo_model"]["gpu_hours"] == pytest.approx(unset)
    grpo["max_steps"] = 1  # one step: far fewer prompts than the training set
    assert _rows(plan(cfg, a))["grpo_model"]["gpu_hours"] < unset / 10
    # a run whose task size is unknown is noted and skipped; the runs after it are still counted
    grpo["max_steps"] = -1
    cfg["models"] = {"ghost": {"source": "grpo", "init": "base", "task": "unknown_task"}, **cfg["models"]}
    result = plan(cfg, a)
    assert _rows(result)["grpo_model"]["jobs"] == 1
    assert any("grpo_model ghost" in n for n in result["notes"])


def test_one_benchmark_file_calibrates_its_own_rule(small, tmp_path):
    """Only pmc_label's single job is matched whatever its file is called; another rule's file keeps its name."""
    est = _rows(plan(small))["generate"]["jobs_detail"]["base"]["gpu_hours"] * 3600
    (tmp_path / "generate").mkdir()
    (tmp_path / "generate" / "base.tsv").write_text(f"s\n{2 * est}\n")
    assert _rows(plan(small, benchmarks=tmp_path))["generate"]["calibrated_gpu_hours"] == pytest.approx(2 * est / 3600)
