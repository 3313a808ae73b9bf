"""The paper's numbers, read back: which Acc@1 Table 2 reports, how big its balanced subsets are, ChestMNIST's
classes, and the noise beside each comparison. All on constructed data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from medbridge import MedbridgeError
from medbridge.score.metrics import compute_metrics


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
