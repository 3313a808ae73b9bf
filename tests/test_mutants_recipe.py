"""The recipe's config check and its reading of a metrics file at their edges (issue #25)."""

from __future__ import annotations

import copy

import pytest

from medbridge import MedbridgeError
from medbridge.recipe import check_recipe_config, from_metrics

from .conftest import filled


def test_recipe_k_must_be_one_of_evaluate_k(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg)
    cfg["evaluate"]["k"] = [1, 2, 4]
    cfg["recipe"] = {"tau": 0.5, "k": 4}
    check_recipe_config(cfg)
    del cfg["recipe"]["k"]  # unset: the largest k the metrics carry
    check_recipe_config(cfg)
    cfg["recipe"]["k"] = 8
    with pytest.raises(MedbridgeError, match=r"recipe.k = 8 is not in evaluate.k \[1, 2, 4\]"):
        check_recipe_config(cfg)


def test_a_greedy_only_metrics_file_has_zero_samples():
    m = {"acc1": 0.25, "pass_at_k": {"1": 0.5}, "n_items": 4, "model": "base", "evalset": "x"}
    d = from_metrics(m)
    assert (d.k, d.support, d.acc1, d.n_items, d.n_samples) == (1, 0.5, 0.25, 4, 0)
    assert from_metrics(m | {"n_samples": 16}).n_samples == 16


def test_without_k_the_largest_k_is_read():
    m = {"acc1": 0.25, "pass_at_k": {"4": 0.75, "1": 0.5, "2": 0.6}, "n_items": 4}
    assert (from_metrics(m).k, from_metrics(m).support) == (4, 0.75)


def test_the_explanation_states_the_decision_and_its_numbers():
    from medbridge.recipe import Diagnosis, explain

    low = explain(Diagnosis("organamnist", "base", 8, 0.30, 0.10, 33, 8, "m.json"), tau=0.5)
    assert "Support@8 = 30.0%   Acc@1 (sampled) = 10.0%   gap = 20.0 points" in low
    assert "BRIDGE" in low and "SHARPEN" not in low
    high = explain(Diagnosis("organamnist", "sft", 8, 0.75, 0.30, 33, 8, "m.json"), tau=0.5)
    assert "SHARPEN" in high and "BRIDGE" not in high and "turn the 45.0-point gap into Acc@1" in high


def test_a_missing_item_names_the_first_three(tmp_path):
    from medbridge.recipe import from_generations

    s = {"text": "<answer>A</answer>", "choice": "A", "correct": True}
    rows = [{"id": "q0", "answer": "A", "options": {"A": "x", "B": "y"}, "greedy": s, "samples": [s]}]
    items = [{"id": f"q{i}", "answer": "A"} for i in range(5)]
    with pytest.raises(MedbridgeError, match=r"no generations for 4 items .*\['q1', 'q2', 'q3'\]\)"):
        from_generations(rows, k=1, items=items)


def test_the_explanations_header_and_thresholds():
    from medbridge.recipe import Diagnosis, explain

    named = explain(Diagnosis("organamnist", "base", 8, 0.30, 0.10, 33, 8, "m.json"), tau=0.4)
    assert named.splitlines()[0] == "task organamnist (model base): 33 items, 8 samples each"
    assert "Support@8 < tau = 40.0%  ->  BRIDGE" in named
    bare = explain(Diagnosis("organamnist", None, 1, 0.75, 0.30, 33, 0, "m.json"), tau=0.4)
    assert bare.splitlines()[0] == "task organamnist: 33 items"
    assert "Support@1 >= tau = 40.0%  ->  SHARPEN" in bare


def test_generations_are_named_by_their_file_and_k_must_be_positive(tiny_cfg):
    from medbridge.recipe import from_generations

    s = {"text": "<answer>A</answer>", "choice": "A", "correct": True}
    rows = [{"id": "q0", "answer": "A", "options": {"A": "x", "B": "y"}, "greedy": s, "samples": [s, s]}]
    assert from_generations(rows, k=1, where="gen/organamnist.jsonl").task == "organamnist"
    assert from_generations(rows, k=2, where="gen/organamnist.jsonl", task="mine").task == "mine"
    with pytest.raises(MedbridgeError):
        from_generations(rows, k=0)
    cfg = copy.deepcopy(tiny_cfg)
    cfg["recipe"] = {"k": cfg["evaluate"]["k"][0]}  # tau unset: its default, 0.5, is valid
    check_recipe_config(filled(cfg))
