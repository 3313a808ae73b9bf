"""The plan worked out by hand for small configs (issue #25): each rule's cost terms (the judge's, SFT epochs, the
reference forwards, Table 3's images, pmc_label), the subset sizes, the profile's requests, the benchmark files and
their calibration, the printed plan."""

from __future__ import annotations

import copy
import math
import re

import pytest
import yaml

from medbridge.config import validate_config
from medbridge.data.medmnist import medmnist_info
from medbridge.plan import Assumptions
from medbridge.plan import plan as _plan

from .conftest import ROOT, filled


def plan(cfg: dict, *args, **kwargs):
    """medbridge.plan.plan on `cfg` with the schema's defaults filled in: the tests cut and change a validated config
    (a verb's config comes through validate_config, which fills them)."""
    return _plan(filled(cfg), *args, **kwargs)


BUDGET = 2048  # paper evaluate.max_new_tokens and train.grpo.max_completion_length (asserted below)
IMG = 1296  # 224 px under the paper's min_pixels: 36 x 36 LLM tokens (tests/test_plan.py derives it)


@pytest.fixture(autouse=True)
def one_gpu_per_job(monkeypatch):
    """The formulas here are priced per GPU: every rule books one (what more GPUs cost is
    test_a_multi_gpu_job_pays_its_fixed_costs_on_every_gpu's, and tests/test_plan.py reads the real bookings)."""
    import dataclasses

    from medbridge import bookings

    one = {rule: dataclasses.replace(b, gpus=1) for rule, b in bookings.BOOKINGS.items()}
    monkeypatch.setattr(bookings, "BOOKINGS", one)


@pytest.fixture(scope="module")
def small() -> dict:
    """The paper config cut to one dataset (breastmnist, 2 classes), a 7B base, the 32B judge; nothing else runs but
    the probe (Table 1 always runs: without a probe section, at the schema's defaults)."""
    cfg = validate_config(yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))
    del cfg["evaluate"]["job_hours"]  # one generate job per model (the split: tests/test_plan_bookings.py)
    cfg["data"]["datasets"] = ["breastmnist"]
    cfg["evaluate"].update(models=["base"], n_samples=4, k=[1, 2, 4], backend="vllm", judge="vlm")
    for key in ("rq3", "vqa", "probe", "recipe"):
        cfg.pop(key)
    cfg["models"] = {
        "base": {"source": "hub", "id": "Qwen/Qwen2.5-VL-7B-Instruct"},
        "judge": {"source": "hub", "id": "Qwen/Qwen2.5-VL-32B-Instruct"},
    }
    assert cfg["evaluate"]["max_new_tokens"] == BUDGET and cfg["train"]["grpo"]["max_completion_length"] == BUDGET
    return filled(cfg)


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


@pytest.mark.parametrize("epochs", [1, 3, None])
def test_sft_hours_by_hand(small, epochs):
    """sft_model: 6 x params x tokens of training, tokens = examples x epochs x (image + prompt + target); one load.
    Without `epochs` training runs one (medbridge.train.common), and so does the plan."""
    a, cfg = Assumptions(), copy.deepcopy(small)
    cfg["models"]["tuned"] = {"source": "sft", "init": "base"}
    cfg["train"]["sft"].update(datasets=["breastmnist"], epochs=epochs)
    if epochs is None:
        del cfg["train"]["sft"]["epochs"]
        epochs = 1
    examples = min(cfg["mcq"]["train_per_class"] * 2, medmnist_info()["breastmnist"]["n_samples"]["train"])
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
    prompts = min(cfg["mcq"]["train_per_class"] * 2, medmnist_info()["breastmnist"]["n_samples"]["train"])

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


def test_a_multi_gpu_job_pays_its_fixed_costs_on_every_gpu(small, tmp_path):
    """A judge job on 2 GPUs (what the rule books; here a profile's override of this module's 1): its load and vLLM
    start are paid twice, in both estimates."""
    a = Assumptions()
    profile = tmp_path / "config.yaml"
    profile.write_text("__use_yte__: true\nset-resources:\n  score:\n    gpu: 2\n")
    one, two = _rows(plan(small, a))["score"], _rows(plan(small, a, profile=profile))["score"]
    fixed = (32 * a.load_s_per_b + a.vllm_start_s) / 3600
    assert two["gpus_per_job"] == 2 and two["fixed_gpu_hours"] == pytest.approx(2 * fixed)
    assert two["gpu_hours"] - one["gpu_hours"] == pytest.approx(fixed)
    assert two["gpu_hours_at_budget"] - one["gpu_hours_at_budget"] == pytest.approx(fixed)


def test_documented_assumptions_are_the_defaults():
    """docs/CLUSTER.md quotes each throughput flag's default, e.g. `--load-s-per-b` (6 s per billion parameters)."""
    text = " ".join((ROOT / "docs" / "CLUSTER.md").read_text().split())
    quoted = dict(re.findall(r"`--([a-z-]+)` \((?:[A-Za-z]+, )?([0-9.]+)", text))  # "(vLLM, 2500 at 7B)" too
    quoted |= dict(re.findall(r"\(`--([a-z-]+)`, ([0-9.]+)\)", text))  # "(`--vllm-overhead-gib`, 2.5)"
    quoted |= {k: v.replace(",", "") for k, v in re.findall(r"`--(pmc-questions)`, default PMC-VQA's ([0-9,]+)", text)}
    assert len(quoted) >= 10
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
        assert split_size(filled(cfg), "breastmnist", split) == len(arrays[f"{split}_labels"])


def test_a_profile_overrides_what_a_rule_books_and_its_defaults_do_not(small, tmp_path):
    """As Snakemake applies them: set-resources replace a rule's own resources key by key; default-resources never
    reach a resource the rule declares."""
    from medbridge.plan import profile_requests

    (tmp_path / "config.yaml").write_text(
        "__use_yte__: true\ndefault-resources:\n  runtime: 90\n  gpu: 3\nset-resources:\n  generate:\n    gpu: 2\n"
    )
    got = profile_requests(tmp_path, small)
    assert got["generate"] == {"gpus": 2, "runtime": 2880, "mem_mb": 64000, "partition": None}
    assert got["features"] == {"gpus": 1, "runtime": 240, "mem_mb": 96000, "partition": None}
    assert "generate_part" not in got  # small: generation unsplit, no part jobs


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


def test_the_result_names_its_profile(small, tmp_path):
    (tmp_path / "config.yaml").write_text("__use_yte__: true\n")
    assert plan(small, profile=tmp_path)["profile"] == str(tmp_path)
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
    for off in (-1, 0):  # transformers caps the steps only for max_steps > 0
        grpo["max_steps"] = off
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


def test_table3_images_are_priced_at_the_min_pixels_side(small):
    """A Table 3 benchmark's images vary in size: each is priced as an image of side sqrt(evaluate.min_pixels) (none
    has fewer tokens under that bound), the MCQ images at data.size. With min_pixels 56 x 56 the two differ: a 224 px
    MedMNIST image is 8 x 8 LLM tokens, a VQA image 2 x 2. One model answers only Table 3 (10 items, greedy only)."""
    from medbridge.plan import Sizes, generation_work

    a, cfg = Assumptions(), copy.deepcopy(small)
    cfg["evaluate"].update(min_pixels=56 * 56, judge="rule")
    cfg["models"]["vqa_only"] = {"source": "hub", "id": "Qwen/Qwen2.5-VL-3B-Instruct"}
    cfg["vqa"] = {"benchmarks": [{"name": "vqa_rad"}], "max_items": 10, "models": ["vqa_only"]}
    fixed = {"base": 7 * a.load_s_per_b + a.vllm_start_s, "vqa_only": 3 * a.load_s_per_b + a.vllm_start_s}

    def seconds(items, image, samples, params, completion):
        prefill = 2 * params * 1e9 * items * (image + a.prompt_tokens) / (a.prefill_tflops * 1e12)
        decode = items * (1 + samples) * completion / (a.decode_tokens_per_s * a.reference_params_b / params)
        return prefill + decode

    expected = {"base": seconds(2 * 42, 8 * 8, 4, 7, BUDGET), "vqa_only": seconds(10, 2 * 2, 0, 3, BUDGET)}
    typical = {
        "base": seconds(2 * 42, 8 * 8, 4, 7, BUDGET * a.completion_fraction),
        "vqa_only": seconds(10, 2 * 2, 0, 3, BUDGET * a.completion_fraction),
    }
    detail = _rows(plan(cfg, a))["generate"]["jobs_detail"]
    for model in expected:
        assert detail[model]["fixed_s"] == pytest.approx(fixed[model])
        assert detail[model]["gpu_hours"] * 3600 == pytest.approx(typical[model] + fixed[model])
    # the same numbers from the one-model function the generation jobs are made of
    sizes = Sizes(filled(cfg), {}, a.reference_params_b)
    sets = sizes.eval_sets()
    assert [(s.part, s.items, s.image_tokens, s.samples) for s in sets["vqa_only"]] == [("Table 3", 10, 4, 0)]
    for model in expected:
        work = generation_work(sizes, a, model, sets[model])
        assert (work.typical_s, work.budget_s, work.fixed_s) == pytest.approx(
            (typical[model], expected[model], fixed[model])
        )


@pytest.mark.parametrize(
    "balance,per_class,expected",
    [
        ("equal", None, {"breastmnist": (2 * 42, "paper"), "tissuemnist": (47280 // 8 * 8, "bound")}),
        ("equal", 30, {"breastmnist": (2 * 30, "paper"), "tissuemnist": (8 * 30, "per_class")}),
        ("equal", 100, {"breastmnist": (2 * 42, "paper"), "tissuemnist": (8 * 100, "per_class")}),
        ("equal", 10**6, {"breastmnist": (2 * 42, "paper"), "tissuemnist": (47280, "per_class")}),
        ("capped", None, {"breastmnist": (2 * 42, "paper"), "tissuemnist": (47280 // 8 * 8, "bound")}),
        ("capped", 30, {"breastmnist": (2 * 30, "per_class"), "tissuemnist": (8 * 30, "per_class")}),
        ("capped", 100, {"breastmnist": (156, "per_class"), "tissuemnist": (8 * 100, "per_class")}),
    ],
)
def test_eval_subset_items_by_hand(small, balance, per_class, expected):
    """Without data files: BreastMNIST's smallest test class is the paper's 42 (2 classes, 156 test images),
    TissueMNIST's is unknown (8 classes, 47,280 test images: at most 47,280 // 8 each). `equal` takes
    min(per_class, smallest) of every class (without per_class, all of the smallest); `capped` up to per_class of
    each, at most the split."""
    from medbridge.plan import eval_items

    cfg = copy.deepcopy(small)
    cfg["data"]["root"] = "/nonexistent"
    cfg["mcq"]["balance"] = balance
    cfg["mcq"].pop("per_class", None)
    if per_class is not None:
        cfg["mcq"]["per_class"] = per_class
    assert medmnist_info()["breastmnist"]["n_samples"]["test"] == 156
    assert medmnist_info()["tissuemnist"]["n_samples"]["test"] == 47280
    for flag, items in expected.items():
        assert eval_items(cfg, flag, "test") == items, flag


def test_an_unknown_smallest_class_is_noted_with_its_split(small):
    from medbridge.plan import Sizes

    cfg = copy.deepcopy(small)
    cfg["data"].update(root="/nonexistent", datasets=["breastmnist", "tissuemnist"])
    sizes = Sizes(filled(cfg), {}, 7.0)
    assert sizes.items("breastmnist") == 2 * 42  # the paper's smallest class: known, no note
    assert sizes.items("tissuemnist") == sizes.items("tissuemnist") == 47280 // 8 * 8  # noted once
    assert sizes.notes == [
        "tissuemnist: the smallest class of tissuemnist's test split is unknown without its data "
        "file; priced at the bound of 47280 items (classes x split size / classes)"
    ]


def test_the_smallest_class_is_counted_without_excluded_and_empty_classes(tiny_cfg, tmp_path):
    """From the data file: images the MCQ rule excludes (ChestMNIST with two findings: class -1) and classes with no
    image do not count; the smallest of the rest does."""
    import numpy as np

    from medbridge.data.medmnist import npz_name
    from medbridge.io import save_npz
    from medbridge.plan import smallest_class

    cfg = copy.deepcopy(tiny_cfg)
    cfg["data"] |= {"source": "medmnist", "root": str(tmp_path)}
    cfg["mcq"]["chestmnist"] = "with_no_finding"
    labels = np.zeros((10, 14), dtype=np.uint8)
    labels[[0], 0] = 1  # 1 single-finding "atelectasis" (class 0): the smallest
    labels[[1, 2, 3, 4], 1] = 1  # 4 single-finding "cardiomegaly"
    labels[5, [0, 1]] = 1  # two findings: excluded
    images = np.zeros((10, 64, 64), dtype=np.uint8)  # rows 6..9: no finding (4 images)
    save_npz(
        tmp_path / npz_name("chestmnist", cfg["data"]["size"]),
        **{f"{s}_{k}": v for s in ("train", "val", "test") for k, v in (("images", images), ("labels", labels))},
    )
    assert smallest_class(cfg, "chestmnist", "test") == (1, "counted")


def test_a_benchmark_without_an_item_cap_is_skipped_and_noted(small):
    """Table 3 sets without max_items (and no vqa.max_items) are left out, said in the notes; the others count."""
    from medbridge.plan import Sizes

    cfg = copy.deepcopy(small)
    cfg["vqa"] = {"benchmarks": [{"name": "slake"}, {"name": "vqa_rad", "max_items": 10}], "models": ["base"]}
    sizes = Sizes(filled(cfg), {}, 7.0)
    assert [(s.part, s.items) for s in sizes.eval_sets()["base"]] == [("RQ2", 2 * 42), ("Table 3", 10)]
    assert sizes.notes == ["Table 3: no item cap (vqa.max_items) for ['slake']: those jobs not counted"]


def test_a_synthetic_splits_smallest_class_is_its_round_robin_share(tiny_cfg):
    """The synthetic twin deals labels round-robin: the smallest class has split size // classes images."""
    from medbridge.plan import smallest_class

    cfg = copy.deepcopy(tiny_cfg)
    cfg["data"] |= {"source": "synthetic", "root": "/nonexistent", "synthetic": {"n_test": 65}}
    assert smallest_class(cfg, "breastmnist", "test") == (32, "synthetic")  # 65 images over 2 classes


@pytest.mark.parametrize("bounds", [True, False])
def test_pmc_label_hours_by_hand(small, bounds):
    """pmc_label: the 32B judge reads each question of the pool (image + prompt prefilled) and writes
    vqa.pmc.max_new_tokens; images at the labeller's own max_pixels when it has pixel bounds (448 px: 16 x 16
    tokens), else as Table 3's (evaluate.min_pixels 1003520: 36 x 36). One load and one vLLM start."""
    a, cfg = Assumptions(), copy.deepcopy(small)
    cfg["vqa"] = {
        "benchmarks": [],
        "models": [],
        "pmc": {"labeller": "vlm", "judge": "judge", "pool_size": 100, "max_new_tokens": 4},
    }
    if bounds:
        cfg["vqa"]["pmc"].update(min_pixels=3136, max_pixels=448 * 448)
    cfg["models"]["judge"]["memory"] = {"params_b": 33.45, "kv_kib_per_token": 256, "largest_tensor_m": 778.6}
    image = 16 * 16 if bounds else 36 * 36
    work = (
        _hours(2, 32, 100 * (image + a.prompt_tokens), a.prefill_tflops)
        + 100 * 4 / (a.decode_tokens_per_s * a.reference_params_b / 32) / 3600
    )
    fixed = (32 * a.load_s_per_b + a.vllm_start_s) / 3600
    result = plan(cfg, a)
    row = _rows(result)["pmc_label"]
    assert (row["jobs"], row["fixed_gpu_hours"]) == (1, pytest.approx(fixed))
    assert row["gpu_hours"] == row["gpu_hours_at_budget"] == pytest.approx(work + fixed)
    assert (
        "pmc_label: 100 PMC-VQA training questions (vqa.pmc.pool_size, a seeded pool), in resumable shards of "
        "4096" in result["notes"]
    )
    # its GPU memory is checked: the judge's vLLM engine on one GPU (no profile), weights 33.45e9 x 2 bytes
    (mem,) = [m for m in result["memory"] if m["rule"] == "pmc_label"]
    assert (mem["job"], mem["gpus"]) == ("judge", 1)
    assert mem["parts"]["vLLM weights"] == pytest.approx(33.45e9 * 2 / 2**30)


def test_profile_requests_at_attempt_one_and_card_memory(small, tmp_path):
    """A profile's overrides are read at attempt 1 (runtime `min(60 * attempt, 2880)`: 60 minutes; `gpu` 2 * attempt:
    2) and its cards' memory from the raw template's __variables__ (a file path works as well as its folder)."""
    from medbridge import MedbridgeError
    from medbridge.plan import DEFAULT_CARD_GIB, card_memory_gib, profile_requests

    profile = tmp_path / "config.yaml"
    profile.write_text(
        "__use_yte__: true\n__variables__:\n  gpu_memory_gib: 40\ndefault-resources:\n"
        '  runtime: 5\nset-resources:\n  generate:\n    runtime: ?f"min(60 * attempt, 2880)"\n  score:\n'
        '    gpu: ?f"2 * attempt"\n    runtime: 30\n    slurm_partition: gpu\n'
    )
    got = profile_requests(tmp_path, small)
    assert got["generate"] == {"gpus": 1, "runtime": 60, "mem_mb": 64000, "partition": None}
    assert got["score"] == {"gpus": 2, "runtime": 30, "mem_mb": 128000, "partition": "gpu"}
    assert profile_requests(profile, small) == got
    assert profile_requests(None, small)["score"] == {"gpus": 1, "runtime": 900, "mem_mb": 128000, "partition": None}
    assert card_memory_gib(tmp_path) == card_memory_gib(profile) == 40.0
    profile.write_text("__use_yte__: true\n__variables__:\n  gpu_memory_gib: 0.5\n")  # small, but positive
    assert card_memory_gib(tmp_path) == 0.5
    doc = " ".join((ROOT / "docs" / "CLUSTER.md").read_text().split())
    assert card_memory_gib(None) == DEFAULT_CARD_GIB == float(re.search(r"gpu_memory_gib` \((\d+): an 80 GB", doc)[1])
    profile.write_text("__use_yte__: true\n")  # no __variables__: the default card
    assert card_memory_gib(tmp_path) == DEFAULT_CARD_GIB
    for bad in ("0", "-8", "big"):
        profile.write_text(f"__use_yte__: true\n__variables__:\n  gpu_memory_gib: {bad}\n")
        with pytest.raises(MedbridgeError, match="gpu_memory_gib must be a positive number"):
            card_memory_gib(tmp_path)
    with pytest.raises(MedbridgeError, match="not found"):
        profile_requests(tmp_path / "missing", small)


def test_benchmark_files_by_hand(tmp_path):
    """Each benchmark file's mean `s` over its repeats, keyed by its path under the rule's folder without .tsv
    (wildcards with a slash make subfolders); NA and empty values are skipped, a file without any is left out."""
    from medbridge import MedbridgeError
    from medbridge.plan import read_benchmarks

    (tmp_path / "score" / "rq3").mkdir(parents=True)
    (tmp_path / "score" / "rq3" / "m.tsv").write_text("s\th:m:s\n10\t0:00:10\nNA\t-\n\t-\n20\t0:00:20\n")
    (tmp_path / "score" / "empty.tsv").write_text("s\th:m:s\nNA\t-\n")
    (tmp_path / "notes.txt").write_text("not a rule folder")
    assert read_benchmarks(tmp_path) == {"score": {"rq3/m": 15.0}}
    with pytest.raises(MedbridgeError, match="not a folder"):
        read_benchmarks(tmp_path / "notes.txt")


def test_calibration_by_hand():
    """The rule's estimate x measured / estimated GPU-seconds of the jobs measured (wall seconds x their GPUs);
    files of no job are noted; pmc_label's one file is its one job whatever it is called."""
    from medbridge.plan import Job, calibrate

    jobs = [Job("a", 2, 100.0, 300.0, 10.0), Job("b", 1, 50.0, 80.0, 30.0)]  # typical GPU-s: 120 and 80
    notes: list[str] = []
    assert calibrate("generate", jobs, {"a": 90.0, "x": 1.0}, notes) == pytest.approx(180 / 120 * 200 / 3600)
    assert notes == [
        "generate: benchmark files of no planned job ignored: ['x']",
        "generate: 1 of 2 jobs measured, 1.5x their estimate",
    ]
    assert calibrate("generate", jobs, {}, notes) is None and calibrate("score", jobs, {"x": 5.0}, []) is None
    one = [Job("pmc_label", 2, 100.0, 100.0, 0.0)]
    assert calibrate("pmc_label", one, {"shard-0": 25.0}, []) == pytest.approx(50 / 100 * 100 / 3600)
    assert calibrate("generate", [Job("pmc_label", 2, 100.0, 100.0, 0.0)], {"shard-0": 25.0}, []) is None
    assert math.isnan(calibrate("features", [Job("f", 1, 0.0, 0.0, 0.0)], {"f": 3.0}, []))  # no estimate to scale


def test_grpo_without_epochs_or_batch_size_prices_what_training_runs(small):
    """medbridge.train.common trains one epoch at per-device batch 8 without gradient accumulation when train.grpo
    leaves them out: the plan prices the same run."""
    a, cfg = Assumptions(), copy.deepcopy(small)
    cfg["models"]["rl"] = {"source": "grpo", "init": "base", "task": "breastmnist"}
    grpo = cfg["train"]["grpo"]
    grpo.update(epochs=1, batch_size=8, max_steps=-1)
    explicit = _rows(plan(cfg, a))["grpo_model"]
    del grpo["epochs"], grpo["batch_size"]
    left_out = _rows(plan(cfg, a))["grpo_model"]
    assert left_out["gpu_hours_at_budget"] == pytest.approx(explicit["gpu_hours_at_budget"])
    assert left_out["gpu_hours"] == pytest.approx(explicit["gpu_hours"])
    grpo.update(max_steps=3, grad_accum=1)  # a step cap: batch x grad_accum (training's default 1) / group size
    explicit = _rows(plan(cfg, a))["grpo_model"]
    del grpo["grad_accum"]
    assert _rows(plan(cfg, a))["grpo_model"]["gpu_hours"] == pytest.approx(explicit["gpu_hours"])


def test_the_printed_plan_by_hand():
    """format_plan: hours with one decimal from 0.1 up, two significant digits below, blank where unknown (the table
    prints numbers as numbers: 4.0 as 4); the total row sums the fixed hours; each memory row, each disk row (with
    the save_only_model warning only where it is off) and the notes, in order."""
    from medbridge.plan import format_plan

    def row(rule, jobs, hours, budget, fixed, booked, calibrated, longest, per_job, parts):
        return {
            "rule": rule,
            "jobs": jobs,
            "gpus_per_job": 2,
            "gpu_hours": hours,
            "gpu_hours_at_budget": budget,
            "fixed_gpu_hours": fixed,
            "booked_gpu_hours": booked,
            "calibrated_gpu_hours": calibrated,
            "largest_job_hours_at_budget": longest,
            "booked_hours_per_job": per_job,
            "parts": parts,
        }

    result = {
        "run_name": "mine",
        "profile": None,
        "rows": [
            row("generate", 3, 1234.56, 0.0123, 0.12, None, 0.05, 0.0041, None, "RQ2, recipe"),
            row("score", 1, 0.5, 0.75, 0.25, 4.0, None, 0.75, 2.0, "RQ2"),
        ],
        "total_jobs": 4,
        "total_gpu_hours": 1235.06,
        "total_gpu_hours_at_budget": 0.7623,
        "total_booked_gpu_hours": None,
        "gpu_memory_gib": 40.0,
        "assumptions": {"prompt_tokens": 150},
        "memory": [
            {
                "rule": "generate",
                "job": "base",
                "gpus": 1,
                "needs_gib": 20.04,
                "has_gib": 36.0,
                "parts": {"vLLM weights": 15.44, "KV": 4.6},
            }
        ],
        "disk": [
            {
                "rule": "grpo_model",
                "checkpoint_gb": 116.4,
                "kept": 2,
                "runs": 7,
                "all_runs_gb": 1629.6,
                "save_only_model": False,
            },
            {
                "rule": "sft_model",
                "checkpoint_gb": 16.6,
                "kept": 2,
                "runs": 1,
                "all_runs_gb": 33.2,
                "save_only_model": True,
            },
        ],
        "notes": ["first note", "second note"],
    }
    lines = format_plan(result).splitlines()
    assert lines[0].endswith("CPU rules are not counted; no profile: no booking")
    assert re.fullmatch(r"generate\s+3\s+2\s+1234\.6\s+0\.012\s+0\.1\s+0\.05\s+0\.0041\s+RQ2, recipe", lines[4])
    assert re.fullmatch(r"score\s+1\s+2\s+0\.5\s+0\.8\s+0\.2\s+4\s+0\.8 / 2\s+RQ2", lines[5])
    assert re.fullmatch(r"total\s+4\s+1235\.1\s+0\.8\s+0\.4", lines[6])  # fixed: 0.12 + 0.25
    assert lines[9].startswith("  prompt_tokens = 150: text tokens of one MCQ prompt")
    assert lines[11] == (
        "GPU memory per GPU of each rule's largest job, on 40 GiB cards (profile "
        "__variables__.gpu_memory_gib; medbridge.plan_memory):"
    )
    assert lines[12] == "  generate base (1 GPU): 20.0 of 36.0 GiB = vLLM weights 15.4, KV 4.6"
    assert lines[13] == (
        "Checkpoint disk, grpo_model: 116 GB each, 2 kept per run, 7 runs: 1,630 GB if all run at "
        "once; train.<kind>.save_only_model: weights only (a killed run then starts over)"
    )
    assert lines[14] == "Checkpoint disk, sft_model: 17 GB each, 2 kept per run, 1 runs: 33 GB if all run at once"
    assert lines[15:] == ["Notes:", "  first note", "  second note"]
    result.update(notes=[], profile="profiles/slurm", total_booked_gpu_hours=4.0)
    lines = format_plan(result).splitlines()
    assert lines[0].endswith("; booked = runtime x GPUs x jobs of profiles/slurm") and lines[-1].startswith("Check")
    assert re.fullmatch(r"total\s+4\s+1235\.1\s+0\.8\s+0\.4\s+4", lines[6])


@pytest.mark.parametrize(
    "judge,labeller,checked",
    [
        ("vlm", None, {"score"}),
        ("rule", None, set()),
        ("rule", "vlm", {"pmc_label"}),
        ("vlm", "vlm", {"score", "pmc_label"}),
        ("rule", "rule", set()),
    ],
)
def test_the_judges_memory_is_checked_where_a_rule_loads_it(small, judge, labeller, checked):
    """The judge's vLLM engine is in the memory plan of `score` when evaluate.judge is vlm and of `pmc_label` when
    vqa.pmc.labeller is; the base model (no memory keys, no config.json here) is noted as unchecked."""
    cfg = copy.deepcopy(small)
    cfg["evaluate"]["judge"] = judge
    cfg["models"]["judge"]["memory"] = {"params_b": 33.45, "kv_kib_per_token": 256, "largest_tensor_m": 778.6}
    if labeller:
        cfg["vqa"] = {"benchmarks": [], "models": [], "pmc": {"labeller": labeller, "judge": "judge", "pool_size": 10}}
    result = plan(cfg)
    assert {m["rule"] for m in result["memory"]} == checked
    assert all(m["job"] == "judge" for m in result["memory"])


def test_a_grid_model_has_its_inits_size_even_with_a_dash_in_the_role(small):
    """An RQ3 grid model is sized as its init, read from the grid's own record (not parsed from the name, so a role
    with a dash is fine); a name neither a role nor in the grid is refused, naming it."""
    from medbridge import MedbridgeError
    from medbridge.plan import Sizes

    cfg = copy.deepcopy(small)
    cfg["models"]["my-base"] = {"source": "hub", "id": "Qwen/Qwen2.5-VL-3B-Instruct"}
    cfg["rq3"] = {"inits": ["my-base", "base"], "train_tasks": ["breastmnist"], "pairs": []}
    sizes = Sizes(filled(cfg), {}, 7.0)
    assert sizes.params_b("rq3-my-base-breastmnist") == 3.0 and sizes.params_b("rq3-base-breastmnist") == 7.0
    with pytest.raises(MedbridgeError, match="no model role 'rq3-my-breastmnist'"):
        sizes.params_b("rq3-my-breastmnist")


def test_a_rules_row_and_its_booking_note_by_hand():
    """rule_row over two jobs worked out by hand: GPU-hours typical and at budget (fixed seconds x GPUs added),
    booked = runtime x GPUs per job, and the largest job the one longest in wall time (GPU-seconds / GPUs), not in
    GPU-seconds; longer_than_booked notes it only when it outlasts the runtime, with the rule's remedy."""
    from medbridge.plan.assumptions import Job
    from medbridge.plan.estimate import longer_than_booked, rule_row

    wide = Job("wide", gpus=4, work_s=7200, work_budget_s=14400, fixed_s=900, parts=("RQ2",))  # 18000 GPU-s / 4
    narrow = Job("narrow", gpus=2, work_s=3600, work_budget_s=10800, fixed_s=1800, parts=("RQ2", "recipe"))  # 14400 / 2
    row = rule_row("score", [wide, narrow], runtime=240, calibrated=None)
    assert row["parts"] == "RQ2, recipe" and row["jobs"] == 2 and row["gpus_per_job"] == 4
    assert row["gpu_hours"] == pytest.approx((7200 + 3600 + 3600 + 3600) / 3600)  # 5.0
    assert row["gpu_hours_at_budget"] == pytest.approx((14400 + 3600 + 10800 + 3600) / 3600)  # 9.0
    assert row["fixed_gpu_hours"] == pytest.approx((900 * 4 + 1800 * 2) / 3600)  # 2.0
    assert row["booked_gpu_hours"] == pytest.approx(4 * 4 + 4 * 2)  # 240 min on 4 GPUs, and on 2
    assert row["largest_job"] == "narrow" and row["largest_job_hours_at_budget"] == pytest.approx(2.0)
    assert row["booked_hours_per_job"] == pytest.approx(4.0)
    assert row["jobs_detail"]["wide"] == {
        "gpus": 4,
        "gpu_hours": pytest.approx(3.0),
        "gpu_hours_at_budget": pytest.approx(5.0),
        "fixed_s": 900,
    }
    assert longer_than_booked(row) == []
    assert longer_than_booked({**row, "booked_hours_per_job": 2.0}) == []  # exactly its booking fits
    assert longer_than_booked({**row, "booked_hours_per_job": None}) == []  # no profile: nothing booked
    (note,) = longer_than_booked({**row, "booked_hours_per_job": 1.5})
    assert note == (
        "score: job narrow needs 2.0 h at budget, longer than the 1.5 h booked; raise its runtime in the "
        "profile (or split it: evaluate.job_hours for generation)"
    )
    (note,) = longer_than_booked({**row, "rule": "grpo_model", "booked_hours_per_job": 1.0})
    assert note.endswith("it goes on from its last checkpoint in the next attempt (profile retries)")
    assert rule_row("score", [narrow], runtime=None, calibrated=1.25)["booked_gpu_hours"] is None


@pytest.mark.parametrize("job_hours,rule", [(3, "generate_part"), (None, "generate")])
def test_the_memory_plan_checks_the_rule_that_loads_the_model(small, job_hours, rule):
    """Split generation loads the model in generate_part jobs, one-job generation in generate: the memory row of the
    model is the rule that loads it."""
    from medbridge.plan import plan

    cfg = copy.deepcopy(small)
    cfg["models"]["base"]["memory"] = {"params_b": 8.29, "kv_kib_per_token": 56, "largest_tensor_m": 544.9}
    cfg["evaluate"].pop("job_hours", None)
    if job_hours:
        cfg["evaluate"]["job_hours"] = job_hours
    rules = {m["rule"] for m in plan(cfg)["memory"]}
    assert rule in rules and ({"generate", "generate_part"} - {rule}).isdisjoint(rules)


def test_the_plan_notes_every_rule_booked_shorter_than_its_largest_job(small, tmp_path):
    """A profile booking 1 minute per job: every priced rule whose largest job outlasts it is noted, and only those
    (the probe's features job, ~52 s at budget here, is not)."""
    from medbridge.bookings import GPU_RULES

    one_minute = "".join(f"  {rule}:\n    runtime: 1\n" for rule in GPU_RULES)
    (tmp_path / "config.yaml").write_text("__use_yte__: true\nset-resources:\n" + one_minute)
    result = plan(small, profile=tmp_path)
    short = {n.split(":")[0] for n in result["notes"] if "longer than the 0.0166667 h booked" in n}
    longer = {r["rule"] for r in result["rows"] if r["largest_job_hours_at_budget"] > 1 / 60}
    assert short == longer and short >= {"generate", "score"} and "features" not in short
