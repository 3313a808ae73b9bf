"""Figure 2 (RQ3) from hand-made metrics files: the before/after/delta table and the heatmap."""

import copy

import pandas as pd
import pytest

from medbridge import MedbridgeError
from medbridge.artifacts.rq3 import check_rq3_config, rq3_inputs, rq3_table, write_rq3
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
    cfg["rq3"] = {"train_tasks": ["organamnist", "octmnist"], "inits": ["base", "sft"],
                  "pairs": {"in_domain": [["organamnist", "organamnist"]],
                            "cross_modality": [["octmnist", "pathmnist"]]}}  # fmt: skip
    return cfg


def _write(tmp_path, values=VALUES, drop_k=False):
    paths = []
    for (model, evalset), (acc1, p4) in values.items():
        pass_at_k = {"1": acc1, "2": (acc1 + p4) / 2} | ({} if drop_k else {"4": p4})
        path = tmp_path / "metrics" / model / f"{evalset}.json"
        write_json(path, {"model": model, "evalset": evalset, "n_items": 30, "n_samples": 4, "acc1": acc1,
                          "acc1_ci": [0, 1], "pass_at_k": pass_at_k, "format_failure_rate": 0.0})  # fmt: skip
        paths.append(path)
    return paths


def test_table_has_before_after_delta_per_regime_init_pair_metric(cfg, tmp_path):
    table = write_rq3(cfg, _write(tmp_path), tmp_path / "fig2.csv", tmp_path / "fig2.png")
    assert len(table) == 2 * 2 * 2  # pairs x inits x {acc1, pass@4}
    csv = pd.read_csv(tmp_path / "fig2.csv")
    assert list(csv.columns) == ["regime", "init", "train_task", "eval_task", "metric", "before", "after", "delta"]
    row = csv[(csv.init == "sft") & (csv.regime == "in_domain") & (csv.metric == "acc1")].iloc[0]
    assert (row.train_task, row.eval_task) == ("organamnist", "organamnist")
    assert (row.before, row.after, row.delta) == pytest.approx((0.30, 0.55, 0.25))
    row = csv[(csv.init == "sft") & (csv.regime == "cross_modality") & (csv.metric == "pass@4")].iloc[0]
    assert (row.train_task, row.eval_task) == ("octmnist", "pathmnist")
    assert (row.before, row.after, row.delta) == pytest.approx((0.70, 0.60, -0.10))
    assert set(csv.metric) == {"acc1", "pass@4"}  # K = max(evaluate.k)
    assert (tmp_path / "fig2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_rule_asks_for_exactly_the_metrics_the_table_reads(cfg):
    assert sorted(rq3_inputs(cfg)) == sorted(VALUES)


def test_missing_metrics_or_k_are_named(cfg, tmp_path):
    from medbridge.artifacts.rq3 import load_metrics

    values = {k: v for k, v in VALUES.items() if k != ("rq3-sft-octmnist", "pathmnist")}
    with pytest.raises(MedbridgeError, match="rq3-sft-octmnist on pathmnist"):
        rq3_table(cfg, load_metrics(_write(tmp_path / "a", values)))
    with pytest.raises(MedbridgeError, match="no Pass@4"):
        rq3_table(cfg, load_metrics(_write(tmp_path / "b", drop_k=True)))
    bad = tmp_path / "bad.json"
    write_json(bad, {"model": "base"})
    with pytest.raises(MedbridgeError, match="lacks"):
        load_metrics([bad])


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
    rc = main(["rq3", "--config", str(cfg_path), "--metrics", *paths, "--csv", str(tmp_path / "o.csv"),
               "--png", str(tmp_path / "o.png")])  # fmt: skip
    assert rc == 0 and len(pd.read_csv(tmp_path / "o.csv")) == 8
    assert (tmp_path / "o.csv.provenance.json").exists()
    assert main(["rq3", "--config", str(cfg_path), "--metrics", paths[0], "--csv", str(tmp_path / "x.csv"),
                 "--png", str(tmp_path / "x.png")]) == 2  # fmt: skip
