"""The fidelity ledger (docs/FIDELITY.md) and the authors' choices it records: the paper config keeps the authors'
value wherever one exists, comparison.csv names the rows touching each number, TRL runs with the authors' rollout
settings, and `medbridge plan` shows the cost of the authors' probe augmentation."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from medbridge.config import validate_config
from medbridge.fidelity import LEDGER, deviations, render_markdown, rows_for

ROOT = Path(__file__).resolve().parents[1]


def _paper() -> dict:
    return validate_config(yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))


def test_docs_fidelity_is_the_rendered_ledger():
    assert (ROOT / "docs" / "FIDELITY.md").read_text() == render_markdown(), (
        "docs/FIDELITY.md is stale: run `medbridge fidelity --out docs/FIDELITY.md`"
    )
    ids = [r.id for r in LEDGER]
    assert len(ids) == len(set(ids))
    # the list of choices, each a row
    for needed in (
        "eval-prompt",
        "chat-template",
        "sampling",
        "answer-extraction",
        "judge-scope",
        "balanced-subsets",
        "options",
        "retina-options",
        "probe-augment",
        "rewards",
        "care-span",
        "trl-knobs",
        "pmc-labelling",
        "table3-source",
        "med-r1",
        "recipe-split",
        "image-resolution",
    ):
        assert needed in ids, needed
    assert "&lt;answer&gt;" in render_markdown()  # tags outside code spans survive Markdown rendering


def test_every_ledger_key_is_a_config_key():
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    for row in LEDGER:
        for key in row.keys:
            node = schema
            for part in key.path.split("."):
                node = node.get("properties", {}).get(part)
                assert node is not None, f"{row.id}: {key.path} is not in config/schema.yaml"


def test_paper_config_is_the_authors_except_two_documented_speed_choices():
    # vLLM generation (evaluation and GRPO rollouts) instead of HF generate: same sampling, not the same engine
    assert deviations(_paper()) == ["eval-backend", "rollout-engine"]
    tiny = validate_config(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    assert "probe-augment" in deviations(tiny) and "answer-extraction" not in deviations(tiny)
    changed = copy.deepcopy(_paper())
    changed["evaluate"]["answer_tag"] = "last"
    changed["train"]["grpo"]["care"]["span"] = "content"
    del changed["train"]["grpo"]["top_k"]  # absent: the code default, the authors' 50
    assert set(deviations(changed)) - set(deviations(_paper())) == {"answer-extraction", "care-span"}


def test_comparison_names_the_ledger_rows_of_each_number():
    from medbridge.artifacts.comparison import comparison_frame

    cfg = validate_config(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    probe = {"model": "base", "dataset": "retinamnist", "accuracy": 0.5, "n": 10}
    m = {"model": "sft", "evalset": "chestmnist", "acc1": 0.1, "acc1_ci": [0.0, 0.2]}
    df = comparison_frame([probe], [m], {}, cfg).set_index(["model", "column"])
    t1 = df.loc[("base", "retinamnist"), "ledger"].split(";")
    assert {"probe-augment", "probe-features", "balanced-subsets"} <= set(t1)
    assert "answer-extraction" not in t1  # the probe generates no answers
    t2 = df.loc[("sft", "chestmnist"), "ledger"].split(";")
    assert {"answer-extraction", "chestmnist-rule", "sft-bridge"} <= set(t2)  # sft is trained by the tiny DAG
    assert "retina-options" not in t2 and "care-span" not in t2
    # tiny: cached features; BatchNorm's cumulative average and the best-val epoch
    assert df.loc[("base", "retinamnist"), "ledger_deviations"] == "probe-augment;probe-head"
    assert "chestmnist-rule" in df.loc[("sft", "chestmnist"), "ledger_deviations"]  # tiny: findings_only
    assert rows_for("T2", "retinamnist", None) != rows_for("T2", "organamnist", None)


def test_trl_runs_with_the_authors_rollout_settings(cfg_with_local_model, synthetic_dir, tmp_path):
    from medbridge.data.mcq import make_items
    from medbridge.data.medmnist import npz_name
    from medbridge.io import write_jsonl
    from medbridge.train.grpo import build_trainer, grpo_args

    cfg = copy.deepcopy(cfg_with_local_model)
    section = cfg["train"]["grpo"]
    args = grpo_args(cfg, {**section, "use_vllm": True}, tmp_path / "w")
    assert (args.top_k, args.repetition_penalty, args.min_p) == (50, 1.0, None)
    assert args.use_vllm and not args.vllm_importance_sampling_correction
    other = grpo_args(cfg, {**section, "top_k": 0, "vllm_importance_sampling_correction": True}, tmp_path / "w")
    assert other.top_k == 0 and other.vllm_importance_sampling_correction
    # the HF rollout path (the authors' engine): TRL's GenerationConfig carries the same values
    items = tmp_path / "items.jsonl"
    write_jsonl(items, make_items("pneumoniamnist", synthetic_dir / npz_name("pneumoniamnist", 64), "train", 4, 0))
    trainer, _ = build_trainer(cfg, "base", [str(items)], tmp_path / "work")
    gen = trainer.generation_config
    assert (gen.top_k, gen.top_p, gen.temperature, gen.repetition_penalty) == (50, 1.0, 1.0, 1.0)
    assert gen.do_sample


def test_plan_shows_the_cost_of_the_authors_probe_augmentation(monkeypatch):
    from medbridge.plan import plan

    paper = _paper()
    cheap = copy.deepcopy(paper)
    cheap["probe"]["augment"] = "none"

    def features(cfg):
        return next(r for r in plan(cfg)["rows"] if r["rule"] == "features")

    aug, none = features(paper), features(cheap)
    # 20 passes over the train images instead of one: many times the GPU time
    assert aug["gpu_hours"] > 5 * none["gpu_hours"] > 0
