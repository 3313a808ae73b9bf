"""The claims artifact: the paper's three claims about RL, held or not, from hand-made metrics and Figure 2."""

import copy
import json

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
    cfg["rq3"] = {
        "train_tasks": ["organamnist"],
        "inits": ["base", "sft"],
        "pairs": {"in_domain": [["organamnist", "organamnist"]]},
    }
    return cfg


def _metrics(tmp_path, model, acc_items: int, pass_items: int, greedy_items: int | None = None):
    """Item i correct iff i < acc_items; its Pass@8 is 1 iff i < pass_items. With `greedy_items`, a file of
    `medbridge score`'s shape: Acc@1 the mean of the samples (as above), the greedy answer right iff
    i < greedy_items."""
    acc = [float(i < acc_items) for i in range(N)]
    pk = [float(i < pass_items) for i in range(N)]
    path = tmp_path / "metrics" / model / "organamnist.json"
    per_item = {"id": [f"q{i}" for i in range(N)], "acc1": acc, "pass_at_k": {"1": acc, "8": pk}}
    extra = {}
    if greedy_items is not None:
        greedy = [float(i < greedy_items) for i in range(N)]
        per_item.update(acc1_sampled=acc, acc1_greedy=greedy)
        extra = {"acc1_definition": "sampled", "acc1_sampled": sum(acc) / N, "acc1_greedy": sum(greedy) / N}
    write_json(
        path,
        {
            "model": model,
            "evalset": "organamnist",
            "n_items": N,
            "n_samples": 8,
            "acc1": sum(acc) / N,
            "acc1_ci": [0, 1],
            "pass_at_k": {"1": sum(acc) / N, "8": sum(pk) / N},
            "per_item": per_item,
            **extra,
        },
    )
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
    table = _run(
        cfg,
        tmp_path,
        {"base": (0, 4), "sft": (14, 34), ("sft", "organamnist"): (26, 32), ("base", "organamnist"): (1, 4)},
    )
    assert table.held.tolist() == [True, True, True]
    assert "base 10.0%" in table.numbers[0] and "after SFT 85.0%" in table.numbers[0]
    assert (
        "35.0% -> 65.0% (+30.0 pp" in table.numbers[1]
        and "gap Pass@8 - Acc@1 (greedy): 50.0 -> 15.0 pp" in table.numbers[1]
    )
    md = (tmp_path / "claims.md").read_text()
    assert md.count("| held ") == 3 + 1 and "NOT held" not in md and "Seed 0" in md  # 3 rows + the header
    assert pd.read_csv(tmp_path / "claims.csv").held.tolist() == [True, True, True]


def test_sharpening_is_decided_on_the_sample_mean_with_greedy_beside(cfg, tmp_path):
    """Claim 2 uses the run's Acc@1, the mean of the samples (the paper's Table 2 quantity), even where the greedy
    answer does not move; greedy Acc@1 is shown beside it with its own paired CI, and never decides the claim."""
    # (items right by sample mean, items with Pass@8, items right greedily): greedy flat at 30, sample mean 14 -> 26
    table = _run(
        cfg,
        tmp_path,
        {
            "base": (0, 4, 0),
            "sft": (14, 34, 30),
            ("sft", "organamnist"): (26, 34, 30),
            ("base", "organamnist"): (0, 4, 0),
        },
    )
    assert table.held.tolist() == [True, True, True]
    claim2 = table.numbers[1]
    assert claim2.startswith("Acc@1 (mean of samples) on organamnist: 35.0% -> 65.0% (+30.0 pp")
    assert "beside it, Acc@1 (greedy): 75.0% -> 75.0% (+0.0 pp, paired 95% CI [+0.0, +0.0] pp)" in claim2
    row = pd.read_csv(tmp_path / "claims.csv").iloc[1]
    assert row.acc1_definition == "sampled" and row.beside_definition == "greedy"
    assert (row.before, row.after) == (0.35, 0.65) and row.ci_low > 0
    assert (row.beside_before, row.beside_after, row.beside_delta) == (0.75, 0.75, 0.0)
    # the other way round: greedy rises, the sample mean does not: not held, whatever greedy says
    table = _run(
        cfg,
        tmp_path,
        {
            "base": (0, 4, 0),
            "sft": (14, 34, 10),
            ("sft", "organamnist"): (14, 34, 30),
            ("base", "organamnist"): (0, 4, 0),
        },
    )
    assert table.held.tolist() == [True, False, True]
    assert "beside it, Acc@1 (greedy): 25.0% -> 75.0% (+50.0 pp" in table.numbers[1]


def test_with_acc1_greedy_the_claim_is_greedy_and_the_sample_mean_beside(cfg, tmp_path):
    cfg["evaluate"]["acc1"] = "greedy"
    values = {
        "base": (0, 4, 0),
        "sft": (14, 34, 10),
        ("sft", "organamnist"): (26, 34, 30),
        ("base", "organamnist"): (0, 4, 0),
    }
    name = {m: m if isinstance(m, str) else rq3_model(cfg, *m) for m in values}
    paths = {}
    for m, (acc, pk, greedy) in values.items():  # as `medbridge score` writes a greedy run: acc1 is the greedy one
        path = _metrics(tmp_path, name[m], acc, pk, greedy)
        data = json.loads(path.read_text())
        data.update(acc1=data["acc1_greedy"], acc1_definition="greedy")
        data["per_item"]["acc1"] = data["per_item"]["acc1_greedy"]
        write_json(path, data)
        paths[name[m]] = path
    write_rq3(cfg, list(paths.values()), tmp_path / "fig2.csv", tmp_path / "fig2.png")
    table = write_claims(
        cfg,
        [paths[m] for m, _ in claims_inputs(cfg)],
        tmp_path / "fig2.csv",
        tmp_path / "claims.csv",
        tmp_path / "claims.md",
    )
    assert table.numbers[1].startswith("Acc@1 (greedy) on organamnist: 25.0% -> 75.0%")
    assert "beside it, Acc@1 (mean of samples): 35.0% -> 65.0% (+30.0 pp" in table.numbers[1]


def test_claims_read_the_metrics_of_grpo_from_sft(cfg, tmp_path):
    assert claims_inputs(cfg) == [("base", "organamnist"), ("sft", "organamnist"), ("rl", "organamnist")]
    values = {"base": (0, 4), "sft": (14, 34), ("sft", "organamnist"): (26, 32), ("base", "organamnist"): (1, 4)}
    name = {m: m if isinstance(m, str) else rq3_model(cfg, *m) for m in values}
    paths = {name[m]: _metrics(tmp_path, name[m], *v) for m, v in values.items()}
    write_rq3(cfg, list(paths.values()), tmp_path / "fig2.csv", tmp_path / "fig2.png")
    with pytest.raises(MedbridgeError, match="no metrics for rl on organamnist"):
        write_claims(cfg, [paths["base"], paths["sft"]], tmp_path / "fig2.csv", tmp_path / "c.csv", tmp_path / "c.md")


def test_claims_not_held_are_said_so(cfg, tmp_path):
    # base already has support; RL from sft gains 1 item (CI includes 0); RL from base gains 12 items
    table = _run(
        cfg,
        tmp_path,
        {"base": (10, 30), "sft": (14, 34), ("sft", "organamnist"): (15, 34), ("base", "organamnist"): (22, 30)},
    )
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
