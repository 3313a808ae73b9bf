import json

import pytest

from medbridge.data.mcq import make_items
from medbridge.data.medmnist import npz_name
from medbridge.generate import SamplingSettings, get_backend
from medbridge.generate.run import EvalJob, run_generation
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
    assert params[0] == {"n": 1, "temperature": 0.0, "max_tokens": 2048, "repetition_penalty": 1.0}
    assert params[1] == {
        "n": 16,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 0,
        "repetition_penalty": 1.0,
        "max_tokens": 2048,
        "seed": params[1]["seed"],
    }  # every knob explicit, none inherited
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
    run_generation(cfg, "base", [EvalJob(str(items_path), str(out))])
    first = out.read_text()
    shards = sorted((tmp_path / "gen.jsonl.shards").glob("shard-*.jsonl"))
    assert len(shards) == 3
    # a lost shard (killed run) is regenerated identically; complete shards are reused as they are
    shards[1].unlink()
    mtime0 = shards[0].stat().st_mtime_ns
    run_generation(cfg, "base", [EvalJob(str(items_path), str(out))])
    assert out.read_text() == first and shards[0].stat().st_mtime_ns == mtime0

    rows = read_jsonl(out)
    assert all(len(r["samples"]) == 4 and r["prompt_hash"] for r in rows)
    m = compute_metrics(rows, [1, 2, 4], n_boot=200, seed=0)
    by_hand = sum(pass_at_k(4, sum(s["correct"] for s in r["samples"]), 2) for r in rows) / len(rows)
    assert m["pass_at_k"]["2"] == pytest.approx(by_hand)
    assert m["acc1_greedy"] == pytest.approx(sum(r["greedy"]["correct"] for r in rows) / len(rows))
    assert m["acc1"] == m["acc1_sampled"] == pytest.approx(m["pass_at_k"]["1"])  # the paper's Acc@1: Pass@1 at n
    assert json.dumps(m)  # JSON-serialisable as the metrics file


def test_metrics_on_constructed_rows():
    def row(greedy_ok, sample_oks):
        s = lambda ok: {"text": "", "choice": "A" if ok else "B", "method": "tag", "correct": ok}  # noqa: E731
        return {
            "id": f"q{len(sample_oks)}-{greedy_ok}-{sum(sample_oks)}",
            "greedy": s(greedy_ok),
            "samples": [s(o) for o in sample_oks],
        }

    rows = [row(True, [True, False, False, False]), row(False, [False] * 4), row(False, [True] * 4)]
    m = compute_metrics(rows, [1, 4], n_boot=0, seed=0, acc1="greedy")
    assert m["acc1"] == pytest.approx(1 / 3) and m["acc1_definition"] == "greedy"
    assert m["pass_at_k"]["1"] == pytest.approx((0.25 + 0 + 1) / 3)
    assert m["pass_at_k"]["4"] == pytest.approx(2 / 3)
    assert m["acc1_ci"] == [None, None]
    assert m["per_item"]["acc1"] == [1.0, 0.0, 0.0] and m["per_item"]["pass_at_k"]["4"] == [1.0, 0.0, 1.0]


def test_greedy_only_runs_for_table3(cfg_with_local_model, few_items, tmp_path):
    from medbridge.generate.vllm import build_requests
    from medbridge.models.registry import load_processor, resolve

    items_path = tmp_path / "items.jsonl"
    write_jsonl(items_path, few_items)
    out = tmp_path / "gen.jsonl"
    run_generation(cfg_with_local_model, "base", [EvalJob(str(items_path), str(out), n_samples=0)])
    rows = read_jsonl(out)
    assert all(r["samples"] == [] for r in rows)
    m = compute_metrics(rows, [1, 2], n_boot=10, seed=0)
    assert m["pass_at_k"] == {} and 0 <= m["acc1"] <= 1
    assert m["acc1_definition"] == "greedy" and m["acc1_sampled"] is None  # no samples: greedy whatever is asked
    processor = load_processor(resolve(cfg_with_local_model, "base"))
    prompts, params = build_requests(processor, few_items, SamplingSettings(0, 0.7, 0.9, 64, "eval"), seed=0)
    assert len(prompts) == len(params) == len(few_items) and all(p["temperature"] == 0.0 for p in params)


def test_vlm_judge_redecides_unclear_answers_and_keeps_verdicts(cfg_with_local_model, tiny_model_dir):
    from medbridge.score.judge import JUDGES

    cfg = cfg_with_local_model
    cfg["models"]["judge"] = {"source": "local", "path": str(tiny_model_dir)}
    clean = {"text": "<answer>A</answer>", "choice": "A", "method": "tag", "correct": True}
    unclear = {"text": "probably the first one", "choice": None, "method": "none", "correct": False}
    rows = [
        {
            "id": "q1",
            "answer": "A",
            "options": {"A": "x", "B": "y"},
            "greedy": dict(clean),
            "samples": [dict(unclear), dict(clean)],
        }
    ]
    assert JUDGES["rule"](cfg)(rows, {}) == []
    verdicts = JUDGES["vlm"](cfg)(rows, {"q1": {"question": "Which?"}})
    assert len(verdicts) == 1 and verdicts[0]["response"] == "probably the first one"
    assert rows[0]["samples"][0]["method"] == "judge"  # only the unclear answer was re-decided
    assert rows[0]["greedy"] == clean and rows[0]["samples"][1] == clean
    assert rows[0]["samples"][0]["correct"] == (verdicts[0]["judge_choice"] == "A")


def test_samples_ignore_the_checkpoints_generation_defaults(cfg_with_local_model, tiny_model_dir, few_items):
    """The tiny model ships Qwen2.5-VL's generation_config.json (top_k 1, top_p 0.001, temperature 0.1,
    repetition_penalty 1.05). Inherited, they make every "sample" the greedy text; the settings asked for must win."""
    from medbridge.models.tiny import QWEN25_VL_GENERATION_DEFAULTS

    shipped = json.loads((tiny_model_dir / "generation_config.json").read_text())
    assert {k: shipped[k] for k in QWEN25_VL_GENERATION_DEFAULTS} == QWEN25_VL_GENERATION_DEFAULTS
    backend = get_backend("hf")(cfg_with_local_model, "base")
    settings = SamplingSettings(6, 1.0, 1.0, 8, "eval")
    out = backend.generate(few_items, settings, seed=0, progress=False)
    differs = [sum(s != c.greedy for s in c.samples) for c in out]
    assert sum(differs) >= len(few_items) * 3, differs  # near-greedy copies would give ~0 here
    assert all(len(set(c.samples)) > 1 for c in out)


def test_effective_settings_are_recorded(cfg_with_local_model, few_items, tmp_path):
    cfg = cfg_with_local_model
    cfg["evaluate"].update(temperature=0.8, top_p=0.95, top_k=20, repetition_penalty=1.1, max_new_tokens=5)
    items_path = tmp_path / "items.jsonl"
    write_jsonl(items_path, few_items)
    run_generation(cfg, "base", [EvalJob(str(items_path), str(tmp_path / "g.jsonl"), n_samples=2)])
    settings = read_jsonl(tmp_path / "g.jsonl")[0]["settings"]
    assert settings == {
        "n_samples": 2,
        "temperature": 0.8,
        "top_p": 0.95,
        "max_new_tokens": 5,
        "prompt": "eval",
        "top_k": 20,
        "repetition_penalty": 1.1,
    }


def test_one_run_many_eval_sets_one_model_load(cfg_with_local_model, synthetic_dir, tmp_path, monkeypatch):
    import medbridge.generate.hf as hf

    loads = []
    real = hf.HFBackend.__init__
    monkeypatch.setattr(hf.HFBackend, "__init__", lambda self, *a, **k: (loads.append(a[1]), real(self, *a, **k))[1])
    jobs = []
    for flag, n in (("organamnist", 2), ("pathmnist", 0)):
        items = make_items(flag, synthetic_dir / npz_name(flag, 64), "test", 1, seed=0)[:3]
        write_jsonl(tmp_path / f"{flag}.jsonl", items)
        jobs.append(EvalJob(str(tmp_path / f"{flag}.jsonl"), str(tmp_path / "gen" / f"{flag}.jsonl"), n))
    written = run_generation(cfg_with_local_model, "base", jobs, shard_root=str(tmp_path / "shards"))
    assert loads == ["base"] and list(written.values()) == [3, 3]
    assert [len(r["samples"]) for r in read_jsonl(jobs[1].out)] == [0, 0, 0]  # greedy-only set stays greedy-only
    assert (tmp_path / "shards" / "organamnist" / "key.json").exists()


def test_shards_of_another_model_are_not_reused(cfg_with_local_model, tiny_cfg, few_items, tmp_path):
    """A retrained model (other weights) must regenerate: its shards key on the model's files, seed and settings."""
    import copy

    from medbridge.models.tiny import build_tiny_model, tokenizer_corpus

    other = tmp_path / "other"
    build_tiny_model(other, tokenizer_corpus(tiny_cfg["data"]["datasets"]), tiny_cfg["tiny_model"], seed=7)
    items_path = tmp_path / "items.jsonl"
    write_jsonl(items_path, few_items)
    job = EvalJob(str(items_path), str(tmp_path / "gen.jsonl"))
    cfg = cfg_with_local_model
    run_generation(cfg, "base", [job])
    first = (tmp_path / "gen.jsonl").read_text()
    shard = tmp_path / "gen.jsonl.shards" / "shard-00000.jsonl"
    mtime = shard.stat().st_mtime_ns
    run_generation(cfg, "base", [job])  # same model, seed, settings: reused as it is
    assert shard.stat().st_mtime_ns == mtime

    swapped = copy.deepcopy(cfg)
    swapped["models"]["base"]["path"] = str(other)
    run_generation(swapped, "base", [job])
    assert shard.stat().st_mtime_ns != mtime and (tmp_path / "gen.jsonl").read_text() != first
    reseeded = copy.deepcopy(swapped)
    reseeded["seed"] = 1
    mtime = shard.stat().st_mtime_ns
    run_generation(reseeded, "base", [job])
    assert shard.stat().st_mtime_ns != mtime
