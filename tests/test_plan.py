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
from medbridge.plan import Assumptions, image_tokens, n_items
from medbridge.plan import plan as _plan

from .conftest import ROOT, filled


def plan(cfg: dict, *args, **kwargs):
    """medbridge.plan.plan on `cfg` with the schema's defaults filled in: the tests cut and change a validated config
    (a verb's config comes through validate_config, which fills them)."""
    return _plan(filled(cfg), *args, **kwargs)


@pytest.fixture(scope="module")
def paper() -> dict:
    """config/paper.yaml with each model's generation in one job (evaluate.job_hours removed): these tests price the
    work; tests/test_plan_bookings.py checks its split into generate_part jobs."""
    cfg = validate_config(yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))
    del cfg["evaluate"]["job_hours"]
    return cfg


@pytest.fixture(scope="module")
def unsplit_profile(tmp_path_factory):
    """profiles/slurm as a site running generation unsplit sets it: `generate` (then the GPU job) on the GPU
    partition."""
    text = (PROFILE / "config.yaml").read_text()
    assign = '    mem_mb: ?f"min(16000 * attempt, {max_mem_mb})"'
    assert text.count(assign) == 1
    folder = tmp_path_factory.mktemp("unsplit")
    (folder / "config.yaml").write_text(text.replace(assign, "    slurm_partition: *gpu_partition\n" + assign))
    return folder


def rows(result: dict) -> dict[str, dict]:
    return {r["rule"]: r for r in result["rows"]}


def test_image_tokens_follow_qwen_resize():
    # 224 px under min_pixels = 1280 * 28 * 28: scaled up by sqrt(20), rounded up to 28 px -> 36 x 36 tokens
    side = math.ceil(224 * math.sqrt(1003520 / 224**2) / 28)
    assert image_tokens(224, 1003520, 12845056) == side * side == 1296
    assert image_tokens(224, None, None) == 8 * 8  # within the default bounds: 224 / 28 = 8 per side
    assert image_tokens(100, None, None) == 4 * 4  # 100 px rounds to the nearest multiple of 28: 112 = 4 x 28


def test_items_are_balanced_and_capped_by_the_split(paper):
    assert n_items(paper, "organamnist", "test", 100) == 100 * 11
    retina_test = medmnist_info()["retinamnist"]["n_samples"]["test"]
    assert n_items(paper, "retinamnist", "test", 1000) == retina_test < 1000 * 5
    assert n_items(paper, "tissuemnist", "train", None) == medmnist_info()["tissuemnist"]["n_samples"]["train"]


PROFILE = ROOT / "profiles" / "slurm"


def test_paper_job_counts_follow_the_config(paper, unsplit_profile):
    result = plan(paper, model_sizes={"medvlm_r1": 2}, profile=unsplit_profile)
    r = rows(result)
    rq3 = paper["rq3"]
    rq3_models = [f"rq3-{i}-{t}" for i in rq3["inits"] for t in rq3["train_tasks"]]
    # one generate and one score job per model, over all its eval sets (RQ2, the RQ3 grid, Table 3)
    models = set(paper["evaluate"]["models"]) | set(rq3_models) | set(paper["vqa"]["models"])
    assert r["generate"]["jobs"] == r["score"]["jobs"] == len(models)
    assert set(r["generate"]["jobs_detail"]) == models
    assert r["features"]["jobs"] == len(paper["evaluate"]["models"])
    assert r["grpo_model"]["jobs"] == len(rq3_models) + 1  # + `ours`, trained on the balanced PMC subset
    assert r["pmc_label"]["jobs"] == 1  # always in the total, with an assumed pool when the config has none
    assert result["total_jobs"] == sum(x["jobs"] for x in result["rows"])
    assert result["total_gpu_hours"] == pytest.approx(sum(x["gpu_hours"] for x in result["rows"]))
    assert result["total_gpu_hours"] < result["total_gpu_hours_at_budget"]
    assert not any("medvlm_r1" in n for n in result["notes"])  # its size was given
    assert any("pmc_label" in n and "assumed" in n for n in result["notes"])


def test_generations_are_the_dags_eval_sets(paper):
    """plan prices exactly the (model, eval set) pairs the DAG generates (medbridge.evalsets), the recipe's
    validation subsets among them, each sized on its own split."""
    from medbridge.evalsets import evalset_pairs
    from medbridge.plan import Sizes

    planner = Sizes(paper, {"medvlm_r1": 2}, Assumptions().reference_params_b)
    jobs = planner.eval_jobs()
    assert [(m, e) for _, m, e in jobs] == evalset_pairs(paper)
    recipe = [(m, e) for part, m, e in jobs if part == "recipe"]
    assert recipe and all(e.endswith("-val") for _, e in recipe)
    assert len(recipe) == len(paper["evaluate"]["models"]) * len(paper["data"]["datasets"])
    assert planner.items("bloodmnist") == 8 * 243  # the paper's subsets: classes x the smallest test class
    assert planner.items("bloodmnist-val") == 8 * paper["recipe"]["per_class"]  # "a small validation set"
    assert planner.items("tissuemnist") == medmnist_info()["tissuemnist"]["n_samples"]["test"] // 8 * 8
    assert any("tissuemnist" in n and "bound" in n for n in planner.notes)  # smallest class unknown: said so


def test_booked_hours_follow_the_rules_and_the_profiles_overrides(paper, unsplit_profile, tmp_path):
    """Booked = runtime x GPUs x jobs of what each rule declares (medbridge.bookings); the judge's GPUs follow
    evaluate.judge_tensor_parallel_size; a profile's set-resources override a rule's runtime and GPUs."""
    from medbridge.bookings import booking

    split = validate_config(yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))  # with job_hours
    r = rows(plan(paper, model_sizes={"medvlm_r1": 2}, profile=unsplit_profile))
    r["generate_part"] = rows(plan(split, model_sizes={"medvlm_r1": 2}, profile=PROFILE))["generate_part"]
    assert r["generate_part"]["gpus_per_job"] == 1 and booking("generate_part", split).runtime == 180  # job_hours 3
    for rule in ("generate", "generate_part", "score", "grpo_model", "pmc_label"):
        b = booking(rule, split if rule == "generate_part" else paper)
        assert r[rule]["gpus_per_job"] == b.gpus
        assert r[rule]["booked_gpu_hours"] == pytest.approx(r[rule]["jobs"] * b.gpus * b.runtime / 60)
    assert r["score"]["gpus_per_job"] == r["pmc_label"]["gpus_per_job"] == 2  # bf16 32B: 2 GPUs of >= 40 GB
    one_card = copy.deepcopy(paper)
    one_card["evaluate"]["judge_tensor_parallel_size"] = 1  # an 80 GB card
    r1 = rows(plan(one_card, model_sizes={"medvlm_r1": 2}, profile=unsplit_profile))
    assert r1["score"]["gpus_per_job"] == 1
    assert r1["score"]["booked_gpu_hours"] == pytest.approx(r["score"]["booked_gpu_hours"] / 2)
    # the judge's load and engine start are paid on every GPU it holds
    assert r1["score"]["fixed_gpu_hours"] == pytest.approx(r["score"]["fixed_gpu_hours"] / 2)
    # a site with a 24 h limit: the profile overrides the GRPO runtime, and the plan books that
    short = tmp_path / "short"
    short.mkdir()
    text = (PROFILE / "config.yaml").read_text().replace("max_runtime: 2880", "max_runtime: 1440")
    (short / "config.yaml").write_text(text + "\n  grpo_model:\n    slurm_partition: gpu\n    runtime: 1440\n")
    r2 = rows(plan(split, model_sizes={"medvlm_r1": 2}, profile=short))
    assert r2["grpo_model"]["booked_gpu_hours"] == pytest.approx(r["grpo_model"]["booked_gpu_hours"] / 2)
    # no profile: what the rules book
    assert (
        rows(plan(paper, model_sizes={"medvlm_r1": 2}))["score"]["booked_gpu_hours"] == r["score"]["booked_gpu_hours"]
    )


def test_plan_refuses_bookings_the_site_cannot_start(paper, tmp_path):
    """A GPU job booked above the site's limits, or left off the GPU partition, is refused, naming the fix."""
    with pytest.raises(MedbridgeError, match="generate: runs on GPUs .* set evaluate.job_hours"):
        plan(paper, model_sizes={"medvlm_r1": 2}, profile=PROFILE)  # unsplit generation, the profile's CPU generate
    split = validate_config(yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))
    low = tmp_path / "config.yaml"
    low.write_text((PROFILE / "config.yaml").read_text().replace("max_runtime: 2880", "max_runtime: 1440"))
    with pytest.raises(MedbridgeError, match=r"grpo_model: books runtime 2880, above the site's max_runtime 1440"):
        plan(split, model_sizes={"medvlm_r1": 2}, profile=tmp_path)
    low.write_text((PROFILE / "config.yaml").read_text().replace("max_mem_mb: 256000", "max_mem_mb: 100000"))
    with pytest.raises(MedbridgeError, match=r"sft_model: books mem_mb 256000, above the site's max_mem_mb 100000"):
        plan(split, model_sizes={"medvlm_r1": 2}, profile=tmp_path)


def small_cfg(paper, backend="vllm"):
    cfg = copy.deepcopy(paper)
    cfg["data"]["datasets"] = ["breastmnist"]
    cfg["evaluate"].update(models=["base"], n_samples=4, k=[1, 2, 4], backend=backend)
    for key in ("rq3", "vqa", "probe", "recipe"):
        cfg.pop(key)
    cfg["models"] = {"base": cfg["models"]["base"], "judge": cfg["models"]["judge"]}
    return cfg


@pytest.mark.parametrize("backend", ["vllm", "hf"])
def test_generation_hours_by_hand(paper, backend):
    """One model, one dataset: the estimate equals the documented formula worked out by hand, fixed costs included."""
    cfg, a = small_cfg(paper, backend), Assumptions()
    gen = rows(plan(cfg, a))["generate"]
    items, budget = 2 * 42, 2048  # the paper's subset: all 42 of the smallest class and 42 of the other
    rate = a.decode_tokens_per_s if backend == "vllm" else a.hf_decode_tokens_per_s
    prefill = 2 * 7e9 * items * (1296 + a.prompt_tokens) / (a.prefill_tflops * 1e12)
    decode = items * (1 + 4) * budget / rate  # 7B = the reference size
    fixed = 7 * a.load_s_per_b + (a.vllm_start_s if backend == "vllm" else 0)
    assert gen["jobs"] == 1
    assert gen["fixed_gpu_hours"] == pytest.approx(fixed / 3600)
    assert gen["gpu_hours_at_budget"] == pytest.approx((prefill + decode + fixed) / 3600)
    assert gen["gpu_hours"] == pytest.approx((prefill + decode * a.completion_fraction + fixed) / 3600)
    # a 32B model decodes 32/7 times slower (memory-bound), so the same work costs more
    cfg["models"]["base"] = {"source": "hub", "id": "Qwen/Qwen2.5-VL-32B-Instruct"}
    big = rows(plan(cfg, a))["generate"]
    fixed32 = 32 * a.load_s_per_b + (a.vllm_start_s if backend == "vllm" else 0)
    assert big["gpu_hours_at_budget"] == pytest.approx((prefill * 32 / 7 + decode * 32 / 7 + fixed32) / 3600)


def test_grpo_rollouts_wait_for_the_longest_completion(paper):
    """Each GPU decodes batch_size rollouts at once at small-batch latency, every step as long as its longest
    completion: GPU-seconds = prompts x G / batch_size x longest x latency (+ training compute and loads)."""
    cfg, a = copy.deepcopy(paper), Assumptions()
    cfg.pop("rq3")  # `ours` is then the one GRPO run
    grpo = cfg["train"]["grpo"]
    job = rows(plan(cfg, a))["grpo_model"]
    assert job["jobs"] == 1
    n, g, per_gpu, budget = cfg["vqa"]["pmc"]["subset_size"], grpo["num_generations"], grpo["batch_size"], 2048
    rollouts = n * g / per_gpu * budget * a.decode_latency_ms / 1000  # at budget, a 7B (the reference size)
    slower = rows(plan(cfg, Assumptions(decode_latency_ms=2 * a.decode_latency_ms)))["grpo_model"]
    assert (slower["gpu_hours_at_budget"] - job["gpu_hours_at_budget"]) * 3600 == pytest.approx(rollouts)
    grpo["batch_size"] = 2 * per_gpu  # twice the rollouts per GPU at once: half the rounds of waiting
    wider = rows(plan(cfg, a))["grpo_model"]
    assert (job["gpu_hours_at_budget"] - wider["gpu_hours_at_budget"]) * 3600 == pytest.approx(rollouts / 2)


def test_benchmarks_calibrate_the_estimate(paper, unsplit_profile, tmp_path):
    cfg = small_cfg(paper)
    cfg["models"]["rl"] = {"source": "hub", "id": "ddvd233/QoQ-Med-VL-7B"}
    cfg["evaluate"]["models"] = ["base", "rl"]
    base = plan(cfg, profile=unsplit_profile)
    est = rows(base)["generate"]["jobs_detail"]["base"]["gpu_hours"] * 3600
    bench = tmp_path / "benchmarks"
    (bench / "generate").mkdir(parents=True)
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (bench / "generate" / "base.tsv").write_text(header + f"{3 * est}\t0:00:01\t1\t1\t1\t1\t0\t0\t0\t1\n")
    (bench / "generate" / "ghost.tsv").write_text(header + "5\t0:00:05\t1\t1\t1\t1\t0\t0\t0\t1\n")
    result = plan(cfg, profile=unsplit_profile, benchmarks=bench)
    r = rows(result)
    assert r["generate"]["calibrated_gpu_hours"] == pytest.approx(3 * r["generate"]["gpu_hours"])
    assert r["score"]["calibrated_gpu_hours"] is None  # nothing measured
    assert any("1 of 2 jobs measured" in n for n in result["notes"])
    assert any("ghost" in n for n in result["notes"])
    with pytest.raises(MedbridgeError, match="not a folder"):
        plan(cfg, benchmarks=tmp_path / "missing")


def test_model_sizes_from_names_overrides_and_notes(paper):
    result = plan(paper)
    assert any("'medvlm_r1'" in n and "--model-size" in n for n in result["notes"])
    cfg = copy.deepcopy(paper)
    cfg["models"]["base"] = {"source": "local", "path": "/models/my-vlm"}
    with_default = rows(plan(cfg))["generate"]["gpu_hours"]
    halved = rows(plan(cfg, Assumptions(decode_tokens_per_s=5000)))["generate"]["gpu_hours"]
    assert halved < with_default
    sized = rows(plan(cfg, model_sizes={"base": 70}))["generate"]["gpu_hours"]
    assert sized > with_default


def test_rule_judge_costs_no_gpu(tiny_cfg):
    r = rows(plan(tiny_cfg))
    assert "score" not in r  # answer extraction runs on CPU
    assert r["sft_model"]["jobs"] == 1  # the tiny profile trains its own sft role


def test_cli_prints_and_writes_json(tmp_path, capsys):
    out = tmp_path / "plan.json"
    code = main(
        [
            "plan",
            "--config",
            str(ROOT / "config" / "paper.yaml"),
            "--model-size",
            "medvlm_r1=2",
            "--pmc-questions",
            "8000",
            "--decode-tokens-per-s",
            "3000",
            "--profile",
            str(PROFILE),
            "--json",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "generate_part" in text and "decode_tokens_per_s = 3000" in text and "pmc_label" in text
    assert "booked" in text
    data = json.loads(out.read_text())
    assert data["assumptions"]["decode_tokens_per_s"] == 3000 and data["assumptions"]["pmc_questions"] == 8000
    assert {r["rule"] for r in data["rows"]} >= {"generate_part", "score", "features", "grpo_model", "pmc_label"}
    assert data["total_booked_gpu_hours"] > data["total_gpu_hours"]


def test_cli_rejects_bad_input(capsys):
    assert main(["plan", "--config", str(ROOT / "config" / "paper.yaml"), "--model-size", "medvlm_r1"]) == 2
    assert "ROLE=BILLIONS" in capsys.readouterr().err
    assert main(["plan", "--config", str(ROOT / "config" / "paper.yaml"), "--completion-fraction", "1.5"]) == 2
    assert main(["plan", "--config", str(ROOT / "config" / "paper.yaml"), "--profile", "no/such/profile"]) == 2
    with pytest.raises(MedbridgeError, match="no model role"):
        from medbridge.plan import Sizes

        Sizes(yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()), {}, 7.0).params_b("x")


def test_table3_uses_its_own_item_caps_samples_and_pmc_pool(paper):
    cfg = copy.deepcopy(paper)
    benchmarks = cfg["vqa"]["benchmarks"]
    benchmarks[0]["max_items"] = 10  # a per-benchmark cap beats vqa.max_items
    cfg["vqa"].update(n_samples=2)
    cfg["vqa"]["pmc"]["pool_size"] = 5000
    a = Assumptions()
    r = rows(plan(cfg, a, model_sizes={"medvlm_r1": 2}))
    # medvlthinker answers only Table 3: its job's items and samples are Table 3's
    sets = [(10 if i == 0 else cfg["vqa"]["max_items"]) for i in range(len(benchmarks))]
    more = copy.deepcopy(cfg)
    more["vqa"]["n_samples"] = 3
    diff = rows(plan(more, a, model_sizes={"medvlm_r1": 2}))["generate"]["jobs_detail"]["medvlthinker"]["gpu_hours"]
    one_sample = 2048 * a.completion_fraction / a.decode_tokens_per_s  # one more sample of every item, 7B
    assert (diff - r["generate"]["jobs_detail"]["medvlthinker"]["gpu_hours"]) * 3600 == pytest.approx(
        sum(sets) * one_sample
    )
    labelled = rows(plan(cfg, Assumptions(pmc_questions=1)))["pmc_label"]["gpu_hours"]
    assert r["pmc_label"]["gpu_hours"] == pytest.approx(labelled)  # pool_size wins over the assumed count


def test_every_gpu_rule_is_booked_and_priced_once():
    """One list of GPU rules: medbridge.bookings' (what the rules declare) is the plan's COSTS, in the same order."""
    from medbridge.bookings import BOOKINGS, GPU_RULES
    from medbridge.plan import COSTS

    assert tuple(COSTS) == GPU_RULES == tuple(BOOKINGS)
