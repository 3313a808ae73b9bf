"""The recipe's config check and its reading of a metrics file at their edges (issue #25)."""

from __future__ import annotations

import copy

import pytest

from medbridge import MedbridgeError
from medbridge.recipe import check_recipe_config, from_metrics


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
