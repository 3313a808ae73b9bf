"""Figure 2 (RQ3) from hand-made metrics files: the before/after/delta table, paired CIs, the heatmap."""

import copy
import json

import pandas as pd
import pytest

from medbridge import MedbridgeError
from medbridge.artifacts.rq3 import (
    check_rq3_config,
    load_metrics,
    rq3_inputs,
    rq3_model,
    rq3_models,
    rq3_table,
    write_rq3,
)
from medbridge.io import write_json

# (model, evalset) -> (acc1, pass@4)
VALUES = {
    ("base", "organamnist"): (0.10, 0.40),
    ("rq3-base-organamnist", "organamnist"): (0.12, 0.35),
    ("sft", "organamnist"): (0.30, 0.80),
    ("rq3-sft-organamnist", "organamnist"): (0.55, 0.78),
    ("base", "pathmnist"): (0.20, 0.50),
    ("rq3-base-octmnist", "pathmnist"): (0.18, 0.50),
    ("sft", "pathmnist"): (0.40, 0.70),
    ("rq3-sft-octmnist", "pathmnist"): (0.25, 0.60),
}


@pytest.fixture()
def cfg(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg)
    cfg["evaluate"]["k"] = [1, 2, 4]
    cfg["recipe"]["k"] = 4  # the recipe reads Pass@k from those k (a config validate_config accepts)
    cfg["models"]["rl"]["task"] = "pathmnist"  # not a grid training here: the grid's own names (see test_a_role_...)
    cfg["rq3"] = {
        "train_tasks": ["organamnist", "octmnist"],
        "inits": ["base", "sft"],
        "pairs": {"in_domain": [["organamnist", "organamnist"]], "cross_modality": [["octmnist", "pathmnist"]]},
    }
    return cfg


N_ITEMS = 100


def _write(tmp_path, values=VALUES, drop_k=False, per_item=True):
    """Metrics files over the same 100 items: item i is correct iff i < 100 * acc1 (so a better model is right on a
    superset of items), every item's Pass@k equals the mean."""
    paths = []
    ids = [f"{i:03d}" for i in range(N_ITEMS)]
    for (model, evalset), (acc1, p4) in values.items():
        pass_at_k = {"1": acc1, "2": (acc1 + p4) / 2} | ({} if drop_k else {"4": p4})
        items = {
            "id": ids,
            "acc1": [float(i < round(100 * acc1)) for i in range(N_ITEMS)],
            "pass_at_k": {k: [v] * N_ITEMS for k, v in pass_at_k.items()},
        }
        path = tmp_path / "metrics" / model / f"{evalset}.json"
        write_json(
            path,
            {
                "model": model,
                "evalset": evalset,
                "n_items": N_ITEMS,
                "n_samples": 4,
                "acc1": acc1,
                "acc1_ci": [0, 1],
                "pass_at_k": pass_at_k,
                "format_failure_rate": 0.0,
            }
            | ({"per_item": items} if per_item else {}),
        )
        paths.append(path)
    return paths


def test_table_has_before_after_delta_per_regime_init_pair_metric(cfg, tmp_path):
    table = write_rq3(cfg, _write(tmp_path), tmp_path / "fig2.csv", tmp_path / "fig2.png")
    assert len(table) == 2 * 2 * 2  # pairs x inits x {acc1, pass@4}
    csv = pd.read_csv(tmp_path / "fig2.csv")
    assert list(csv.columns) == [
        "regime",
        "init",
        "train_task",
        "eval_task",
        "metric",
        "acc1_definition",
        "n_items",
        "before",
        "after",
        "delta",
        "delta_ci_low",
        "delta_ci_high",
        "ci_includes_zero",
    ]
    row = csv[(csv.init == "sft") & (csv.regime == "in_domain") & (csv.metric == "acc1")].iloc[0]
    assert (row.train_task, row.eval_task) == ("organamnist", "organamnist")
    assert (row.before, row.after, row.delta) == pytest.approx((0.30, 0.55, 0.25))
    row = csv[(csv.init == "sft") & (csv.regime == "cross_modality") & (csv.metric == "pass@4")].iloc[0]
    assert (row.train_task, row.eval_task) == ("octmnist", "pathmnist")
    assert (row.before, row.after, row.delta) == pytest.approx((0.70, 0.60, -0.10))
    assert set(csv.metric) == {"acc1", "pass@4"}  # K = max(evaluate.k)
    # paired CIs: 25 of 100 items gained, none lost -> clearly above zero; 2 gained -> not distinguishable from 0
    gain = csv[(csv.init == "sft") & (csv.regime == "in_domain") & (csv.metric == "acc1")].iloc[0]
    assert 0.15 < gain.delta_ci_low < 0.25 < gain.delta_ci_high < 0.35 and not gain.ci_includes_zero
    small = csv[(csv.init == "base") & (csv.regime == "in_domain") & (csv.metric == "acc1")].iloc[0]
    assert small.delta == pytest.approx(0.02) and small.delta_ci_low == 0 and small.ci_includes_zero
    assert (tmp_path / "fig2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_deltas_are_paired_over_the_same_items(cfg, tmp_path):
    """Same mean change, different pairing: a model right on a superset of items (+10 items, none lost) is a sure
    gain; one that gains 30 items and loses 20 others has the same +10 points but an interval that includes 0."""

    paths = _write(tmp_path)
    table = rq3_table(cfg, load_metrics(paths))
    before = next(p for p in paths if p.parts[-2:] == ("sft", "organamnist.json"))
    after = next(p for p in paths if p.parts[-2:] == ("rq3-sft-organamnist", "organamnist.json"))
    b = [float(i < 40) for i in range(N_ITEMS)]
    for path, acc in ((before, b), (after, [float(i < 20 or 40 <= i < 70) for i in range(N_ITEMS)])):
        m = json.loads(path.read_text())
        m["acc1"], m["per_item"]["acc1"] = sum(acc) / N_ITEMS, acc
        write_json(path, m)
    swapped = rq3_table(cfg, load_metrics(paths))
    pick = lambda t: t[(t.init == "sft") & (t.regime == "in_domain") & (t.metric == "acc1")].iloc[0]  # noqa: E731
    assert pick(swapped).delta == pytest.approx(0.10)
    assert pick(swapped).ci_includes_zero and pick(swapped).delta_ci_low < 0 < pick(swapped).delta_ci_high
    assert not pick(table).ci_includes_zero
    m = json.loads(after.read_text())
    m["per_item"]["id"] = [f"x{i}" for i in range(N_ITEMS)]
    write_json(after, m)
    with pytest.raises(MedbridgeError, match="different items"):
        rq3_table(cfg, load_metrics(paths))


def test_the_rule_asks_for_exactly_the_metrics_the_table_reads(cfg):
    assert sorted(rq3_inputs(cfg)) == sorted(VALUES)


def test_missing_metrics_or_k_are_named(cfg, tmp_path):

    values = {k: v for k, v in VALUES.items() if k != ("rq3-sft-octmnist", "pathmnist")}
    with pytest.raises(MedbridgeError, match="rq3-sft-octmnist on pathmnist"):
        rq3_table(cfg, load_metrics(_write(tmp_path / "a", values)))
    with pytest.raises(MedbridgeError, match="no Pass@4"):
        rq3_table(cfg, load_metrics(_write(tmp_path / "b", drop_k=True)))
    bad = tmp_path / "bad.json"
    write_json(bad, {"model": "base"})
    with pytest.raises(MedbridgeError, match="lacks"):
        load_metrics([bad])
    with pytest.raises(MedbridgeError, match="rescore"):
        load_metrics(_write(tmp_path / "c", per_item=False))


def test_pairs_must_train_on_a_grid_task(cfg):
    cfg["rq3"]["pairs"]["within_modality"] = [["pathmnist", "bloodmnist"]]
    with pytest.raises(MedbridgeError, match="pathmnist"):
        check_rq3_config(cfg)
    cfg["rq3"]["pairs"].pop("within_modality")
    cfg["rq3"]["inits"] = ["nobody"]
    with pytest.raises(MedbridgeError, match="nobody"):
        check_rq3_config(cfg)


def test_rq3_verb(cfg, tmp_path):
    import yaml

    from medbridge.cli import main

    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    paths = [str(p) for p in _write(tmp_path)]
    rc = main(
        [
            "rq3",
            "--config",
            str(cfg_path),
            "--metrics",
            *paths,
            "--csv",
            str(tmp_path / "o.csv"),
            "--png",
            str(tmp_path / "o.png"),
        ]
    )
    assert rc == 0 and len(pd.read_csv(tmp_path / "o.csv")) == 8
    assert (tmp_path / "o.csv.provenance.json").exists()
    assert (
        main(
            [
                "rq3",
                "--config",
                str(cfg_path),
                "--metrics",
                paths[0],
                "--csv",
                str(tmp_path / "x.csv"),
                "--png",
                str(tmp_path / "x.png"),
            ]
        )
        == 2
    )


def test_scored_metrics_carry_the_per_item_values_the_deltas_pair():
    from medbridge.score.metrics import compute_metrics

    def row(i, greedy, samples):
        return {
            "id": f"q{i}",
            "greedy": {"correct": greedy, "method": "tag", "choice": "A"},
            "samples": [{"correct": c} for c in samples],
        }

    rows = [row(0, True, [True, False, False, False]), row(1, False, [False] * 4), row(2, True, [True] * 4)]
    m = compute_metrics(rows, [1, 4], n_boot=0, seed=0, acc1="greedy")
    assert m["per_item"]["id"] == ["q0", "q1", "q2"] and m["per_item"]["acc1"] == [1.0, 0.0, 1.0]
    assert m["per_item"]["pass_at_k"]["1"] == pytest.approx([0.25, 0.0, 1.0])
    for k in ("1", "4"):
        assert sum(m["per_item"]["pass_at_k"][k]) / 3 == pytest.approx(m["pass_at_k"][k])


def test_a_role_that_is_the_same_training_stands_in_for_the_grid_model(cfg, tmp_path):
    assert rq3_model(cfg, "sft", "organamnist") == "rq3-sft-organamnist"  # rl trains on pathmnist (fixture)
    cfg["models"]["rl"] = {"source": "grpo", "init": "sft", "task": "organamnist"}  # the tiny profile's rl
    cfg["models"]["rl_oct"] = {"source": "grpo", "init": "sft", "task": "octmnist", "dtype": "float32"}  # not equal
    assert rq3_model(cfg, "sft", "organamnist") == "rl" and rq3_model(cfg, "sft", "octmnist") == "rq3-sft-octmnist"
    assert sorted(rq3_models(cfg)) == ["rl", "rq3-base-octmnist", "rq3-base-organamnist", "rq3-sft-octmnist"]
    assert ("rl", "organamnist") in rq3_inputs(cfg) and ("rq3-sft-organamnist", "organamnist") not in rq3_inputs(cfg)
    values = {
        (("rl", "organamnist") if k == ("rq3-sft-organamnist", "organamnist") else k): v for k, v in VALUES.items()
    }
    table = rq3_table(cfg, load_metrics(_write(tmp_path, values)))
    cell = table[(table.init == "sft") & (table.eval_task == "organamnist") & (table.metric == "acc1")].iloc[0]
    assert (cell.before, cell.after) == (0.30, 0.55)
