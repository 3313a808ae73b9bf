"""The claims artifact: the paper's three claims about RL, held or not, from hand-made metrics and Figure 2."""

import copy

import pandas as pd
import pytest

from medbridge import MedbridgeError
from medbridge.artifacts.claims import claims_inputs, claims_task, write_claims
from medbridge.artifacts.rq3 import rq3_inputs, rq3_model, write_rq3
from medbridge.io import write_json

N = 40


@pytest.fixture()
def cfg(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg)
    cfg["evaluate"]["k"] = [1, 8]
    cfg["rq3"] = {"train_tasks": ["organamnist"], "inits": ["base", "sft"],
                  "pairs": {"in_domain": [["organamnist", "organamnist"]]}}  # fmt: skip
    return cfg


def _metrics(tmp_path, model, acc_items: int, pass_items: int):
    """Item i correct greedily iff i < acc_items; its Pass@8 is 1 iff i < pass_items."""
    acc = [float(i < acc_items) for i in range(N)]
    pk = [float(i < pass_items) for i in range(N)]
    path = tmp_path / "metrics" / model / "organamnist.json"
    write_json(path, {"model": model, "evalset": "organamnist", "n_items": N, "n_samples": 8, "acc1": sum(acc) / N,
                      "acc1_ci": [0, 1], "pass_at_k": {"1": sum(acc) / N, "8": sum(pk) / N},
                      "per_item": {"id": [f"q{i}" for i in range(N)], "acc1": acc,
                                   "pass_at_k": {"1": acc, "8": pk}}})  # fmt: skip
    return path


def _run(cfg, tmp_path, values):
    """`values`: init or (init, task) of a grid model -> (items right greedily, items with Pass@8)."""
    name = {m: m if isinstance(m, str) else rq3_model(cfg, *m) for m in values}  # the tiny `rl` is (sft, organamnist)
    paths = {name[m]: _metrics(tmp_path, name[m], *v) for m, v in values.items()}
    assert sorted(paths) == sorted(m for m, _ in rq3_inputs(cfg))
    write_rq3(cfg, list(paths.values()), tmp_path / "fig2.csv", tmp_path / "fig2.png")
    inputs = [paths[m] for m, _ in claims_inputs(cfg)]
    return write_claims(cfg, inputs, tmp_path / "fig2.csv", tmp_path / "claims.csv", tmp_path / "claims.md")


def test_the_three_claims_hold_on_a_run_that_shows_them(cfg, tmp_path):
    table = _run(cfg, tmp_path, {"base": (0, 4), "sft": (14, 34), ("sft", "organamnist"): (26, 32),
                                 ("base", "organamnist"): (1, 4)})  # fmt: skip
    assert table.held.tolist() == [True, True, True]
    assert "base 10.0%" in table.numbers[0] and "after SFT 85.0%" in table.numbers[0]
    assert "35.0% -> 65.0% (+30.0 pp" in table.numbers[1] and "gap Pass@8 - Acc@1 (greedy): 50.0 -> 15.0 pp" in table.numbers[1]
    md = (tmp_path / "claims.md").read_text()
    assert md.count("| held ") == 3 + 1 and "NOT held" not in md and "Seed 0" in md  # 3 rows + the header
    assert pd.read_csv(tmp_path / "claims.csv").held.tolist() == [True, True, True]


def test_claims_not_held_are_said_so(cfg, tmp_path):
    # base already has support; RL from sft gains 1 item (CI includes 0); RL from base gains 12 items
    table = _run(cfg, tmp_path, {"base": (10, 30), "sft": (14, 34), ("sft", "organamnist"): (15, 34),
                                 ("base", "organamnist"): (22, 30)})  # fmt: skip
    assert table.held.tolist() == [False, False, False]
    assert (tmp_path / "claims.md").read_text().count("NOT held") == 3


def test_the_task_is_the_sft_bridge_task_and_a_grid_is_needed(cfg):
    cfg["rq3"]["pairs"]["in_domain"] = [["octmnist", "octmnist"], ["organamnist", "organamnist"]]
    assert claims_task(cfg) == "organamnist"  # the tiny profile's SFT task
    cfg["train"]["sft"]["datasets"] = ["bloodmnist"]
    assert claims_task(cfg) == "octmnist"  # else the first in-domain pair
    cfg["rq3"]["inits"] = ["sft"]
    assert claims_task(cfg) is None and claims_inputs(cfg) == []
    with pytest.raises(MedbridgeError, match="in-domain"):
        write_claims(cfg, [], "x.csv", "c.csv", "c.md")
