"""The boundary-aware recipe (Eq. 1): Support@K, Acc@1, gap, and the bridge / sharpen decision at tau."""

from __future__ import annotations

import json
from math import comb
from pathlib import Path

import pandas as pd
import pytest

from medbridge import MedbridgeError
from medbridge.cli import main
from medbridge.recipe import BRIDGE, SHARPEN, check_tau, decide, from_generations, from_metrics


def gen_row(item_id: str, answer: str, greedy: str, samples: list[str]) -> dict:
    def rec(choice):
        return {"text": f"<answer>{choice}</answer>", "choice": choice, "correct": choice == answer}

    return {"id": item_id, "answer": answer, "greedy": rec(greedy), "samples": [rec(c) for c in samples]}


# Two items, 4 samples each: item 1 has c=1 correct sample, item 2 has c=2; greedy right on item 2 only.
ROWS = [gen_row("q1", "A", "B", ["A", "B", "C", "B"]), gen_row("q2", "C", "C", ["C", "C", "A", "B"])]


def unbiased(n, c, k):
    return 1 - comb(n - c, k) / comb(n, k)


def test_support_and_acc1_from_generations_use_the_unbiased_estimator():
    d = from_generations(ROWS, k=2, where="g.jsonl", acc1="greedy")
    assert d.support == pytest.approx((unbiased(4, 1, 2) + unbiased(4, 2, 2)) / 2)  # (0.5 + 5/6) / 2
    assert from_generations(ROWS, k=2, where="g.jsonl").acc1 == pytest.approx((1 / 4 + 2 / 4) / 2)  # the samples'
    assert d.acc1 == 0.5 and d.gap == pytest.approx(d.support - 0.5) and d.n_items == 2 and d.n_samples == 4
    assert from_generations(ROWS, where="g.jsonl").k == 4  # default K: all samples
    with pytest.raises(MedbridgeError, match="at least 5 samples"):
        from_generations(ROWS, k=5, where="g.jsonl")


def test_a_users_item_set_recounts_correctness_and_must_be_covered():
    items = [{"id": "q1", "answer": "B"}, {"id": "q2", "answer": "C"}]  # the user's key says q1 is B
    d = from_generations(ROWS, k=1, items=items, acc1="greedy")
    assert d.acc1 == 1.0 and d.support == pytest.approx((2 / 4 + 2 / 4) / 2)
    assert from_generations(ROWS, k=1, items=items[1:]).n_items == 1  # generations beyond the set are ignored
    with pytest.raises(MedbridgeError, match="lack an `id` or an `answer`"):
        from_generations(ROWS, k=1, items=[{"id": "q1"}])
    with pytest.raises(MedbridgeError, match="no generations for 1 items"):
        from_generations(ROWS, k=1, items=[*items, {"id": "q3", "answer": "A"}])


def test_decision_on_both_sides_of_tau():
    assert decide(0.49, 0.5) == BRIDGE
    assert decide(0.50, 0.5) == SHARPEN  # Support@K >= tau sharpens
    assert decide(0.0, 0.0) == SHARPEN and decide(0.99, 1.0) == BRIDGE


@pytest.mark.parametrize("tau", [-0.01, 1.01, 50, "0.5", True, None])
def test_tau_outside_unit_interval_is_an_error(tau):
    with pytest.raises(MedbridgeError, match=r"tau must be a fraction in \[0, 1\]"):
        check_tau(tau)


def metrics(path: Path, model: str, evalset: str, acc1: float, passk: dict) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "model": model,
                "evalset": evalset,
                "n_items": 40,
                "n_samples": 8,
                "acc1": acc1,
                "acc1_ci": [acc1, acc1],
                "pass_at_k": {str(k): v for k, v in passk.items()},
            }
        )
    )
    return str(path)


def test_from_metrics_reads_pass_at_k_and_names_missing_k(tmp_path):
    m = json.loads(Path(metrics(tmp_path / "m.json", "base", "organamnist", 0.2, {1: 0.2, 8: 0.7})).read_text())
    d = from_metrics(m, where="m.json")
    assert (d.k, d.support, d.acc1, d.task, d.model) == (8, 0.7, 0.2, "organamnist", "base")
    assert d.gap == pytest.approx(0.5)
    with pytest.raises(MedbridgeError, match=r"k in \[1, 8\], not k=4"):
        from_metrics(m, k=4, where="m.json")


def test_diagnose_verb_prints_evidence_and_decides(tmp_path, capsys):
    low = metrics(tmp_path / "low.json", "base", "organamnist", 0.10, {1: 0.1, 8: 0.30})
    high = metrics(tmp_path / "high.json", "base", "pathmnist", 0.40, {1: 0.4, 8: 0.90})
    out = tmp_path / "d.csv"
    assert main(["diagnose", "--metrics", low, high, "--tau", "0.5", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Support@8 = 30.0%" in text and "gap = 20.0 points" in text and "BRIDGE" in text and "SHARPEN" in text
    df = pd.read_csv(out)
    assert df.set_index("task").decision.to_dict() == {"organamnist": BRIDGE, "pathmnist": SHARPEN}
    assert main(["diagnose", "--metrics", low, "--tau", "1.2"]) == 2
    assert "tau must be a fraction" in capsys.readouterr().err
    assert main(["diagnose", "--metrics", low]) == 2  # no tau and no config
    # from a generations file and the user's own item set
    gen, items = tmp_path / "g.jsonl", tmp_path / "mine.jsonl"
    gen.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    items.write_text(json.dumps({"id": "q1", "answer": "A"}) + "\n" + json.dumps({"id": "q2", "answer": "C"}) + "\n")
    assert main(["diagnose", "--generations", str(gen), "--items", str(items), "--k", "2", "--tau", "0.6"]) == 0
    assert "Support@2 = 66.7%" in capsys.readouterr().out  # (0.5 + 5/6) / 2


def test_recipe_verb_writes_the_decision_table(tiny_cfg, tmp_path):
    import yaml

    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_cfg))
    paths = [
        metrics(tmp_path / m / f"{d}.json", m, d, 0.1, {4: s, 8: s + 0.05})
        for m, d, s in (("base", "octmnist", 0.2), ("sft", "octmnist", 0.6), ("base", "pathmnist", 0.45))
    ]
    out = tmp_path / "recipe_decisions.csv"
    assert main(["recipe", "--config", str(cfg_path), "--metrics", *paths, "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert list(df.decision) == [BRIDGE, SHARPEN, SHARPEN]  # k = recipe.k = 8; tau = 0.5
    assert set(df.k) == {8} and list(df.modality) == ["visible_light_photography"] * 2 + ["microscopy"]
    assert df.support_at_k.tolist() == pytest.approx([0.25, 0.65, 0.5])
