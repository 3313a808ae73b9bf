import json

import pytest

from medbridge.data.mcq import make_items
from medbridge.data.medmnist import npz_name
from medbridge.generate import SamplingSettings, get_backend
from medbridge.generate.run import run_generation
from medbridge.io import read_jsonl, write_jsonl
from medbridge.score.metrics import compute_metrics
from medbridge.score.passk import pass_at_k


@pytest.fixture()
def few_items(synthetic_dir):
    return make_items("organamnist", synthetic_dir / npz_name("organamnist", 64), "test", 1, seed=0)[:5]


def test_hf_backend_greedy_is_reproducible_and_returns_n_samples(cfg_with_local_model, few_items):
    backend = get_backend("hf")(cfg_with_local_model, "base")
    settings = SamplingSettings(3, 1.0, 1.0, 6, "eval")
    a = backend.generate(few_items, settings, seed=1, progress=False)
    b = backend.generate(few_items, settings, seed=1, progress=False)
    c = backend.generate(few_items, settings, seed=2, progress=False)
    assert len(a) == len(few_items) and all(len(x.samples) == 3 for x in a)
    assert [x.greedy for x in a] == [x.greedy for x in b]
    assert [x.samples for x in a] == [x.samples for x in b]  # seeds honoured
    assert [x.samples for x in a] != [x.samples for x in c]


def test_prompt_opens_the_assistant_turn(cfg_with_local_model, few_items):
    from medbridge.generate.chat import chat_prompt

    backend = get_backend("hf")(cfg_with_local_model, "base")
    text = chat_prompt(backend.processor, few_items[0], "eval")
    assert text.endswith("<|im_start|>assistant\n")
    assert "First output the thinking process in <think> </think> tags,Then output" in text


def test_vllm_requests_are_built_without_a_gpu(cfg_with_local_model, few_items):
    from medbridge.generate.vllm import build_requests
    from medbridge.models.registry import load_processor, resolve

    processor = load_processor(resolve(cfg_with_local_model, "base"))
    settings = SamplingSettings(16, 0.7, 0.9, 2048, "eval")
    prompts, params = build_requests(processor, few_items, settings, seed=42, pixels={"max_pixels": 12845056})
    assert len(prompts) == len(params) == 2 * len(few_items)
    assert params[0] == {"n": 1, "temperature": 0.0, "max_tokens": 2048}
    assert params[1]["n"] == 16 and params[1]["temperature"] == 0.7 and params[1]["top_p"] == 0.9
    assert params[1]["seed"] != params[3]["seed"]  # per-question seeds
    assert prompts[0]["prompt"].endswith("<|im_start|>assistant\n")
    assert prompts[0]["multi_modal_data"]["image"][0].mode == "RGB"
    assert prompts[0]["mm_processor_kwargs"] == {"max_pixels": 12845056}


def test_unknown_backend_is_named():
    from medbridge import MedbridgeError

    with pytest.raises(MedbridgeError, match="unknown generation backend 'tgi'"):
        get_backend("tgi")


def test_generations_resume_and_metrics_recompute(cfg_with_local_model, few_items, tmp_path):
    cfg = cfg_with_local_model
    cfg["evaluate"]["shard_size"] = 2
    items_path = tmp_path / "items.jsonl"
    write_jsonl(items_path, few_items)
    out = tmp_path / "gen.jsonl"
    run_generation(cfg, "base", str(items_path), str(out))
    first = out.read_text()
    shards = sorted((tmp_path / "gen.jsonl.shards").glob("shard-*.jsonl"))
    assert len(shards) == 3
    # a lost shard (killed run) is regenerated identically; complete shards are reused as they are
    shards[1].unlink()
    mtime0 = shards[0].stat().st_mtime_ns
    run_generation(cfg, "base", str(items_path), str(out))
    assert out.read_text() == first and shards[0].stat().st_mtime_ns == mtime0

    rows = read_jsonl(out)
    assert all(len(r["samples"]) == 4 and r["prompt_hash"] for r in rows)
    m = compute_metrics(rows, [1, 2, 4], n_boot=200, seed=0)
    by_hand = sum(pass_at_k(4, sum(s["correct"] for s in r["samples"]), 2) for r in rows) / len(rows)
    assert m["pass_at_k"]["2"] == pytest.approx(by_hand)
    assert m["acc1"] == pytest.approx(sum(r["greedy"]["correct"] for r in rows) / len(rows))
    assert json.dumps(m)  # JSON-serialisable as the metrics file


def test_metrics_on_constructed_rows():
    def row(greedy_ok, sample_oks):
        s = lambda ok: {"text": "", "choice": "A" if ok else "B", "method": "tag", "correct": ok}  # noqa: E731
        return {"greedy": s(greedy_ok), "samples": [s(o) for o in sample_oks]}

    rows = [row(True, [True, False, False, False]), row(False, [False] * 4), row(False, [True] * 4)]
    m = compute_metrics(rows, [1, 4], n_boot=0, seed=0)
    assert m["acc1"] == pytest.approx(1 / 3)
    assert m["pass_at_k"]["1"] == pytest.approx((0.25 + 0 + 1) / 3)
    assert m["pass_at_k"]["4"] == pytest.approx(2 / 3)
    assert m["acc1_ci"] == [None, None]


def test_greedy_only_runs_for_table3(cfg_with_local_model, few_items, tmp_path):
    from medbridge.generate.vllm import build_requests
    from medbridge.models.registry import load_processor, resolve

    items_path = tmp_path / "items.jsonl"
    write_jsonl(items_path, few_items)
    out = tmp_path / "gen.jsonl"
    run_generation(cfg_with_local_model, "base", str(items_path), str(out), n_samples=0)
    rows = read_jsonl(out)
    assert all(r["samples"] == [] for r in rows)
    m = compute_metrics(rows, [1, 2], n_boot=10, seed=0)
    assert m["pass_at_k"] == {} and 0 <= m["acc1"] <= 1
    processor = load_processor(resolve(cfg_with_local_model, "base"))
    prompts, params = build_requests(processor, few_items, SamplingSettings(0, 0.7, 0.9, 64, "eval"), seed=0)
    assert len(prompts) == len(params) == len(few_items) and all(p["temperature"] == 0.0 for p in params)


def test_vlm_judge_redecides_unclear_answers_and_keeps_verdicts(cfg_with_local_model, tiny_model_dir):
    from medbridge.score.judge import JUDGES

    cfg = cfg_with_local_model
    cfg["models"]["judge"] = {"source": "local", "path": str(tiny_model_dir)}
    clean = {"text": "<answer>A</answer>", "choice": "A", "method": "tag", "correct": True}
    unclear = {"text": "probably the first one", "choice": None, "method": "none", "correct": False}
    rows = [{"id": "q1", "answer": "A", "options": {"A": "x", "B": "y"}, "greedy": dict(clean),
             "samples": [dict(unclear), dict(clean)]}]  # fmt: skip
    assert JUDGES["rule"](rows, cfg, {}) == []
    verdicts = JUDGES["vlm"](rows, cfg, {"q1": {"question": "Which?"}})
    assert len(verdicts) == 1 and verdicts[0]["response"] == "probably the first one"
    assert rows[0]["samples"][0]["method"] == "judge"  # only the unclear answer was re-decided
    assert rows[0]["greedy"] == clean and rows[0]["samples"][1] == clean
    assert rows[0]["samples"][0]["correct"] == (verdicts[0]["judge_choice"] == "A")
