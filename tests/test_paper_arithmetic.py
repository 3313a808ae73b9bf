"""The paper's numbers, read back: which Acc@1 Table 2 reports, how big its balanced subsets are, ChestMNIST's
classes, and the noise beside each comparison. All on constructed data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from medbridge import MedbridgeError
from medbridge.score.metrics import compute_metrics

from .conftest import filled


def _row(i: int, greedy_ok: bool, sample_oks: list[bool]) -> dict:
    s = lambda ok: {"text": "", "choice": "A" if ok else "B", "method": "tag", "correct": ok}  # noqa: E731
    return {"id": f"q{i}", "greedy": s(greedy_ok), "samples": [s(o) for o in sample_oks]}


# q0: greedy right but 2 of 16 samples right; q1: greedy wrong but 15 of 16 samples right
ROWS = [_row(0, True, [True] * 2 + [False] * 14), _row(1, False, [True] * 15 + [False])]


def test_acc1_sampled_is_the_mean_accuracy_of_the_samples_and_greedy_sits_beside_it():
    m = compute_metrics(ROWS, [1, 16], n_boot=0, seed=0)  # the default: as the paper's numbers
    assert m["acc1_definition"] == "sampled"
    assert m["acc1"] == pytest.approx((2 / 16 + 15 / 16) / 2) == pytest.approx(m["pass_at_k"]["1"])
    assert m["acc1_greedy"] == 0.5 and m["per_item"]["acc1"] == pytest.approx([2 / 16, 15 / 16])
    g = compute_metrics(ROWS, [1, 16], n_boot=0, seed=0, acc1="greedy")
    assert g["acc1"] == 0.5 and g["per_item"]["acc1"] == [1.0, 0.0] and g["acc1_sampled"] == m["acc1"]
    with pytest.raises(MedbridgeError, match="evaluate.acc1 'mean' is unknown"):
        compute_metrics(ROWS, [1], n_boot=0, seed=0, acc1="mean")


def test_table2_breast_cells_are_counts_over_items_times_samples():
    """BreastMNIST base 54.99 % = 739 / (84 x 16): a run with that many correct samples reports it under `sampled`;
    no count over 84 greedy answers gives it."""
    rows, left = [], 739
    for i in range(84):
        c = min(16, left)
        left -= c
        rows.append(_row(i, i % 2 == 0, [True] * c + [False] * (16 - c)))
    m = compute_metrics(rows, [1], n_boot=0, seed=0)
    assert round(100 * m["acc1"], 2) == 54.99
    assert all(round(100 * k / 84, 2) != 54.99 for k in range(85))


def test_the_runs_acc1_flows_into_table2_rq3_and_the_recipe(tmp_path):
    from medbridge.artifacts.table2 import table2_frame, wide_markdown_frame
    from medbridge.recipe import from_metrics

    m = compute_metrics(ROWS, [1, 16], n_boot=0, seed=0) | {"model": "base", "evalset": "breastmnist"}
    long = table2_frame([m])
    assert long.acc1.iloc[0] == pytest.approx(100 * 17 / 32) and long.acc1_greedy.iloc[0] == 50.0
    wide = wide_markdown_frame(long, ["breastmnist"])
    assert list(wide["values"]) == ["ours (mean of the samples)", "ours (greedy)", "reported (paper)"]
    assert wide.breastmnist.iloc[2] == "54.99"
    d = from_metrics(m, 16)
    assert d.acc1 == pytest.approx(17 / 32) and d.gap == pytest.approx(1.0 - 17 / 32)
    assert d.acc1_definition == "sampled"


# ---- balanced subsets: all of the smallest class --------------------------------------------------------------------


def test_without_per_class_a_subset_holds_all_of_the_smallest_class():
    from medbridge.data.mcq import balanced_indices

    classes = np.array([0] * 42 + [1] * 114 + [-1] * 5)  # BreastMNIST's test split: 42 malignant, 114 others
    idx = balanced_indices(classes, None, np.random.default_rng(0))
    assert len(idx) == 84 and set(np.flatnonzero(classes == 0)) <= set(idx)  # every malignant image
    assert len(balanced_indices(classes, 30, np.random.default_rng(0))) == 60  # per_class still caps
    assert len(balanced_indices(classes, None, np.random.default_rng(0), "capped")) == 156  # capped: every image
    with pytest.raises(MedbridgeError, match="per_class must be a positive integer"):
        balanced_indices(classes, 0, np.random.default_rng(0))


@pytest.fixture(scope="module")
def paper() -> dict:
    import yaml

    from medbridge.config import validate_config

    from .conftest import ROOT

    return validate_config(yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))


@pytest.mark.parametrize(
    "flag,classes,smallest",
    [
        ("breastmnist", 2, 42),
        ("dermamnist", 7, 23),
        ("retinamnist", 5, 20),
        ("octmnist", 4, 250),
        ("bloodmnist", 8, 243),
        ("pathmnist", 9, 339),
        ("pneumoniamnist", 2, 234),
        ("chestmnist", 15, 21),
    ],
)
def test_plan_prices_the_papers_denominators(paper, flag, classes, smallest):
    """The paper config's subsets are Table 1's denominators (Breast 84, OCT 1000, Chest 315, ...); `medbridge plan`
    prices those items. The old per_class 100 gave OCT 400."""
    import copy

    from medbridge.plan import Sizes

    assert "per_class" not in paper["mcq"]
    cfg = copy.deepcopy(paper)
    cfg["data"]["root"] = "/nonexistent"  # price without data files
    assert Sizes(cfg, {}, 7.0).items(flag) == classes * smallest
    cfg["mcq"]["per_class"] = 100
    assert Sizes(cfg, {}, 7.0).items(flag) == classes * min(100, smallest)


def test_plan_counts_the_subset_from_the_data_file(tiny_cfg, tmp_path):
    """With the data file present, the smallest class is counted, under the configured ChestMNIST rule."""
    import copy

    from medbridge.data.medmnist import npz_name
    from medbridge.io import save_npz
    from medbridge.plan import eval_items

    cfg = copy.deepcopy(tiny_cfg)
    cfg["data"] |= {"source": "medmnist", "root": str(tmp_path)}
    cfg["mcq"].pop("per_class")
    labels = np.zeros((10, 14), dtype=np.uint8)
    labels[[0, 1, 2], 0] = 1  # 3 single-finding "atelectasis"
    labels[[3, 4], 1] = 1  # 2 single-finding "cardiomegaly"
    labels[5, [0, 1]] = 1  # two findings: never an item
    # rows 6..9: no finding (4 images)
    images = np.zeros((10, 64, 64), dtype=np.uint8)
    save_npz(
        tmp_path / npz_name("chestmnist", 64),
        **{f"{s}_{k}": v for s in ("train", "val", "test") for k, v in (("images", images), ("labels", labels))},
    )
    cfg["mcq"]["chestmnist"] = "with_no_finding"
    assert eval_items(cfg, "chestmnist", "test") == (15 * 2, "counted")
    cfg["mcq"]["chestmnist"] = "findings_only"
    assert eval_items(cfg, "chestmnist", "test") == (14 * 2, "counted")


# ---- ChestMNIST: 14 findings, or 15 with "no finding" ----------------------------------------------------------------


def test_chestmnist_with_no_finding_adds_a_fifteenth_class(tmp_path):
    """Images with no finding become class 14 ("no finding", option O); several findings never an item. Balanced
    without per_class, 15 classes x the smallest (21 each in the paper's test split: 315)."""
    from medbridge.data.mcq import class_names, class_of, make_items
    from medbridge.io import save_npz

    assert 315 == 15 * 21 and 315 % 14 != 0  # the paper's denominator: 15 classes fit, 14 cannot
    labels = np.zeros((14 * 3 + 5 + 2, 14), dtype=np.uint8)
    for c in range(14):
        labels[3 * c : 3 * c + 3, c] = 1  # 3 single-finding images of each finding
    labels[42:44, [0, 5]] = 1  # 2 with two findings
    # rows 44..48: 5 images with no finding
    classes = class_of("chestmnist", labels)
    assert (classes[:42] == np.repeat(np.arange(14), 3)).all() and (classes[42:44] == -1).all()
    assert (classes[44:] == 14).all()
    assert (class_of("chestmnist", labels, "findings_only")[44:] == -1).all()
    assert class_names("chestmnist")[-1] == "no finding" and len(class_names("chestmnist", "findings_only")) == 14

    images = np.zeros((len(labels), 28, 28), dtype=np.uint8)
    save_npz(
        tmp_path / "chestmnist.npz",
        **{f"{s}_{k}": v for s in ("train", "val", "test") for k, v in (("images", images), ("labels", labels))},
    )
    items = make_items("chestmnist", tmp_path / "chestmnist.npz", "test", None, seed=0)
    assert len(items) == 15 * 3 and len(items[0]["options"]) == 15
    none = [it for it in items if it["label"] == 14]
    assert len(none) == 3 and {it["answer"] for it in none} == {"O"} and none[0]["answer_text"] == "no finding"
    only = make_items("chestmnist", tmp_path / "chestmnist.npz", "test", None, seed=0, chest="findings_only")
    assert len(only) == 14 * 3 and len(only[0]["options"]) == 14
    with pytest.raises(MedbridgeError, match="mcq.chestmnist 'fourteen' is unknown"):
        class_names("chestmnist", "fourteen")


# ---- the probe as the authors ran it ---------------------------------------------------------------------------------


def test_probe_batchnorm_momentum_is_the_authors_unless_cumulative_is_asked():
    import torch

    from medbridge.probe.linear import probe_head

    x = torch.full((8, 3), 100.0) + torch.randn(8, 3)
    for momentum, want in ((0.1, 10.0), (None, 100.0)):  # one step: 0.9 x 0 + 0.1 x 100, or the plain mean
        head = probe_head(3, 2, momentum).train()
        head(x)
        assert head[0].running_mean.mean().item() == pytest.approx(want, rel=0.05)


def _probe_arrays(seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], 40)
    x = rng.normal(size=(80, 6)).astype(np.float32) + y[:, None] * 0.8  # learnable, imperfectly
    yv = np.repeat([0, 1], 10)
    xv = rng.normal(size=(20, 6)).astype(np.float32) + yv[:, None] * 0.8
    return {
        "train_features": x,
        "train_labels": y,
        "val_features": xv,
        "val_labels": yv,
        "test_features": xv[::-1].copy() + 0.3,
        "test_labels": yv[::-1].copy(),
    }


def test_probe_reports_the_last_epochs_test_accuracy_or_the_best_val_epochs():
    from medbridge.probe.linear import run_probe

    arrays = _probe_arrays()
    cfg = filled({"seed": 0, "probe": {"epochs": 7, "probe_batch_size": 16}})
    last = run_probe(arrays, {"dataset": "breastmnist"}, cfg, 2)  # the schema's defaults: the authors'
    assert last["settings"]["select"] == "last" and last["settings"]["bn_momentum"] == 0.1
    assert last["epoch"] == 7 and last["accuracy"] == pytest.approx(last["test_curve"][-1])
    cfg["probe"] |= {"select": "best_val", "bn_momentum": None}
    best = run_probe(arrays, {"dataset": "breastmnist"}, cfg, 2)
    assert best["epoch"] == 1 + int(np.argmax(best["val_curve"]))
    assert best["accuracy"] == pytest.approx(best["test_curve"][best["epoch"] - 1])
    cfg["probe"]["select"] = "best"
    with pytest.raises(MedbridgeError, match="probe.select 'best' is unknown"):
        run_probe(arrays, {"dataset": "breastmnist"}, cfg, 2)


# ---- noise beside every comparison -----------------------------------------------------------------------------------


def test_comparison_carries_the_papers_sampling_noise_and_tells_a_miss_from_noise():
    from medbridge.artifacts.comparison import comparison_frame

    vqa_rows = {"base": "Qwen/Qwen2.5-VL-7B-Instruct"}  # reported PathVQA 65.00 over 200 items
    near = {"model": "base", "evalset": "pathvqa", "acc1": 0.62, "acc1_ci": [0.55, 0.69], "n_items": 200}
    far = {"model": "base", "evalset": "pathvqa", "acc1": 0.40, "acc1_ci": [0.33, 0.47], "n_items": 200}
    rows = [comparison_frame([], [m], vqa_rows).iloc[0] for m in (near, far)]
    for r in rows:
        assert r.paper_n == 200 and r.paper_se == pytest.approx(100 * np.sqrt(0.65 * 0.35 / 200))  # ~3.4 points
        assert r.noise_95 == pytest.approx(1.959964 * np.hypot(r.paper_se, 100 * 0.14 / (2 * 1.959964)))
    assert rows[0].within_noise and not rows[1].within_noise  # -3 points is noise, -25 a miss
    # Table 1 and 2 cells: over classes x the smallest test class (Breast 84), the probe's CI from Wilson
    probe = {"model": "base", "dataset": "breastmnist", "accuracy": 68 / 84, "n": 84}
    m = {
        "model": "base",
        "evalset": "breastmnist",
        "acc1": 0.5499,
        "acc1_ci": [0.5, 0.6],
        "n_items": 84,
        "acc1_definition": "sampled",
    }
    df = comparison_frame([probe], [m], {}).set_index("table")
    assert df.loc["Table 1 (linear probe)", "paper_n"] == df.loc["Table 2 (Acc@1)", "paper_n"] == 84
    assert (
        df.loc["Table 1 (linear probe)", "within_noise"] and df.loc["Table 2 (Acc@1)", "acc1_definition"] == "sampled"
    )


# ---- the RL answer format --------------------------------------------------------------------------------------------


def test_answer_not_a_letter_counts_tags_holding_more_than_a_letter():
    from medbridge.train.rewards import accuracy_reward, answer_not_a_letter

    texts = [
        "<think>x</think><answer>B</answer>",
        "<think>x</think><answer> b. </answer>",
        "<think>x</think><answer>B. pneumonia</answer>",
        "<think>x</think><answer>pneumonia</answer>",
        "no tag at all",
        "<answer>pneumonia</answer> then <answer>B</answer>",
    ]
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    assert answer_not_a_letter(completions) == [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    # what it measures: right in words, scored 0 by the exact-match reward
    assert accuracy_reward(completions, ["B"] * 6) == [1.0, 1.0, 0.0, 0.0, 0.0, 1.0]


def test_letter_instruction_appends_upstreams_line_to_the_rl_prompt():
    from medbridge.prompts import LETTER_INSTRUCTION
    from medbridge.train.care import CareSettings
    from medbridge.train.data import grpo_dataset
    from medbridge.train.grpo import reward_functions, reward_weights

    item = {"id": "q", "question": "Which class?", "options": {"A": "x", "B": "y"}, "answer": "B", "images": []}
    plain = grpo_dataset([item])[0]["prompt"][0]["content"]
    asked = grpo_dataset([item], letter_instruction=True)[0]["prompt"][0]["content"]
    assert "single option letter" not in plain and asked == plain + LETTER_INSTRUCTION
    grpo = filled({"train": {"grpo": {"num_generations": 2}}})["train"]["grpo"]  # care omitted: off
    funcs = reward_functions(grpo, CareSettings.from_config(grpo["care"]))
    assert dict(zip([f.__name__ for f in funcs], reward_weights(funcs))) == {
        "accuracy_reward": 1.0,
        "format_reward": 1.0,
        "answer_not_a_letter": 0.0,
    }


# ---- judge scope -----------------------------------------------------------------------------------------------------


class _StandInJudge:
    """A judge that reads the whole response: the last option letter the response names after 'answer is'/a tag."""

    def complete(self, images, prompts, max_new_tokens):
        import re

        out = []
        for p in prompts:
            response = p.split("Model response:\n", 1)[1].split("\n\nWhich option letter", 1)[0]
            found = re.findall(r"(?:answer is |<answer>)([A-Z])\b", response)
            out.append(found[-1] if found else "NONE")
        return out


def test_judge_scope_all_rereads_clean_tags_and_counts_what_it_changes(tmp_path, monkeypatch):
    import copy

    import medbridge.models.registry
    import medbridge.provenance
    from medbridge.io import write_jsonl
    from medbridge.score.judge import VLMJudge
    from medbridge.score.run import score_file

    monkeypatch.setattr(medbridge.provenance, "write_sidecar", lambda *a, **k: None)  # no judge weights to hash
    monkeypatch.setattr(medbridge.models.registry, "resolve", lambda cfg, role: None)

    def s(text, choice, method):
        return {"text": text, "choice": choice, "method": method, "correct": choice == "B"}

    rows = [
        {
            "id": "q1",
            "answer": "B",
            "options": {"A": "x", "B": "y"},
            "settings": {"n": 2},
            "greedy": s("<answer>A</answer> wait, the answer is B", "A", "tag"),  # clean tag, rule reads A
            "samples": [s("<answer>B</answer>", "B", "tag"), s("I think the answer is B", None, "none")],
        }
    ]
    cfg = {
        "seed": 0,
        "models": {"judge": {"source": "local", "path": "/unused"}},
        "evaluate": {"k": [1, 2], "bootstrap": 0, "judge": "vlm", "acc1": "sampled"},
    }
    gen, items = tmp_path / "g.jsonl", tmp_path / "i.jsonl"
    write_jsonl(items, [{"id": "q1", "question": "?", "options": {"A": "x", "B": "y"}, "answer": "B", "images": []}])
    counts = {}
    for scope in ("unclear", "all"):
        cfg["evaluate"]["judge_scope"] = scope
        write_jsonl(gen, copy.deepcopy(rows))
        judge = VLMJudge(cfg)
        judge._backend = _StandInJudge()
        m = score_file(cfg, judge, "base", "breastmnist", str(gen), str(items), str(tmp_path / f"{scope}.json"))
        counts[scope] = (m["judge_scope"], m["judge_calls"], m["judge_changed"], m["acc1_greedy"])
    assert counts["unclear"] == ("unclear", 1, 1, 0.0)  # only the tag-less sample is re-read; the greedy A stands
    assert counts["all"] == ("all", 3, 2, 1.0)  # every answer re-read: the greedy answer's later "B" counts too
    cfg["evaluate"]["judge_scope"] = "some"
    with pytest.raises(MedbridgeError, match="evaluate.judge_scope 'some' is unknown"):
        VLMJudge(cfg)(copy.deepcopy(rows), {})


# ---- processor per step ----------------------------------------------------------------------------------------------


def test_a_processor_override_applies_to_its_steps_only(paper):
    """The authors: OctoMed's own processor for inference and the probe, Qwen2.5-VL-7B-Instruct's for GRPO."""
    from medbridge.models.registry import resolve

    qwen, octo = "Qwen/Qwen2.5-VL-7B-Instruct", "OctoMed/OctoMed-7B"
    assert resolve(paper, "sft").processor_path == octo
    assert resolve(paper, "sft", "probe").processor_path == octo
    assert resolve(paper, "sft", "train").processor_path == qwen
    assert resolve(paper, "ours_released", "evaluate").processor_path == qwen  # no processor_steps: every step
    with pytest.raises(MedbridgeError, match="unknown step 'serve'"):
        resolve(paper, "sft", "serve")


def test_recipe_validation_subsets_are_small_and_test_subsets_full(paper):
    from medbridge.evalsets import eval_per_class

    assert eval_per_class(paper, "test") is None  # all of the smallest class
    assert eval_per_class(paper, "val") == paper["recipe"]["per_class"] == 100
    assert eval_per_class({"mcq": {"eval_split": "test", "per_class": 3}}, "val") == 3  # no recipe cap: mcq's
