"""`medbridge audit` on small hand-built files (issue #25): a clean chain matches; each fault, introduced alone, is
the only problem reported, and none passes silently."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from medbridge.audit import AuditReport, audit_cell, audit_metrics
from medbridge.generate import Completion, SamplingSettings
from medbridge.generate.run import record
from medbridge.io import read_json, sha256_file, write_json, write_jsonl
from medbridge.score.metrics import compute_metrics

OPTIONS = {"A": "cyst", "B": "tumour", "C": "normal"}
SETTINGS = SamplingSettings(n_samples=2, temperature=0.7, top_p=0.9, max_new_tokens=16, prompt="eval")
# (answer, greedy text, sample texts): greedy Acc@1 1/2 (the files report greedy), Pass@1 1/4, Pass@2 1/2
ANSWERS = [
    ("A", "<answer>A</answer>", ["<answer>A</answer>", "<answer>B</answer>"]),
    ("B", "<answer>C</answer>", ["<answer>C</answer>", "<answer>A</answer>"]),
]


def _sidecar(path, inputs) -> None:
    write_json(
        f"{path}.provenance.json",
        {
            "inputs": [{"path": str(p), "sha256": sha256_file(p)} for p in inputs],
            "git": {"commit": "89abcdef0123" + "4" * 28, "dirty": False},
            "host": "test",
            "started": "2026-01-01T00:00:00",
            "models": [{"name": "sft", "path": "m", "revision": None, "weights_sha256": "0123456789abcdef" * 4}],
        },
    )


def build(root, fault: str | None = None) -> dict:
    """items -> generations -> metrics -> table2 cell, each with a sidecar naming the file before it; `fault` is
    built in before the sidecars are written (so the chain of hashes still holds), except `edited`, a hand edit
    made afterwards."""
    items = [
        {"id": f"q{i}", "question": f"Which {i}?", "options": OPTIONS, "answer": a, "images": []}
        for i, (a, _, _) in enumerate(ANSWERS)
    ]
    rows = [record(it, Completion(g, s), SETTINGS) for it, (_, g, s) in zip(items, ANSWERS)]
    metrics = compute_metrics(rows, [1, 2], n_boot=0, seed=0, acc1="greedy") | {
        "model": "sft",
        "evalset": "organamnist",
    }
    if fault in ("choice", "choice_scored"):  # a stored choice that the raw text does not say
        rows[1]["samples"][0] |= {"choice": "B", "correct": True}
    if fault == "choice_scored":  # ... and the metrics a scorer trusting the stored choices would write
        metrics = compute_metrics(rows, [1, 2], n_boot=0, seed=0, acc1="greedy") | {
            "model": "sft",
            "evalset": "organamnist",
        }
    if fault == "flag":  # the right choice with the wrong correctness flag
        rows[0]["samples"][1]["correct"] = True
    if fault == "prompt_hash":
        rows[0]["prompt_hash"] = "0" * 16
    if fault == "acc1":
        metrics["acc1"] += 0.25
    if fault == "pass_at_k":
        metrics["pass_at_k"]["2"] -= 0.25
    paths = {
        "items": root / "items" / "organamnist.jsonl",
        "gen": root / "generations" / "sft" / "organamnist.jsonl",
        "metrics": root / "metrics" / "sft" / "organamnist.json",
        "table": root / "artifacts" / "table2_acc1.csv",
    }
    for p in paths.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(paths["items"], items)
    write_jsonl(paths["gen"], rows)
    _sidecar(paths["gen"], [paths["items"]])
    write_json(paths["metrics"], metrics)
    # the generations file is found by its folder, wherever the sidecar lists it; no item set: no prompt check
    inputs = {"items_first": [paths["items"], paths["gen"]], "no_items": [paths["gen"]]}
    _sidecar(paths["metrics"], inputs.get(fault, [paths["gen"], paths["items"]]))
    cell = 100 * metrics["acc1"] + (1.0 if fault == "cell" else 0.0)
    pd.DataFrame(
        [
            {"model": "base", "dataset": "organamnist", "acc1": 0.0},  # the cell is (model AND column)
            {"model": "sft", "dataset": "organamnist", "acc1": cell},
            {"model": "sft", "dataset": "pathmnist", "acc1": 0.0},
        ]
    ).to_csv(paths["table"], index=False)
    _sidecar(paths["table"], [paths["metrics"]])
    if fault == "edited":  # a field no metric reads, changed by hand after the metrics were made
        edited = [json.loads(line) for line in paths["gen"].read_text().splitlines()]
        edited[0]["source"] = "edited"
        write_jsonl(paths["gen"], edited)
    if fault == "items_missing":
        paths["items"].unlink()
    return paths


def audit(paths) -> AuditReport:
    report = AuditReport()
    audit_cell(str(paths["table"]), "sft", "organamnist", report)
    return report


def test_a_clean_chain_matches(tmp_path):
    paths = build(tmp_path)
    report = audit(paths)
    assert report.problems == [], report.text()
    assert report.text().endswith("verdict: MATCHES")
    text = report.text()
    assert "acc1: recomputed 0.500000 vs metrics file 0.500000" in text
    assert "pass@1: recomputed 0.250000" in text and "pass@2: recomputed 0.500000" in text
    assert "prompt hashes of all 2 items recomputed" in text
    assert "cell 50.0000% vs metrics acc1 50.0000%" in text
    # what was used, shown by its hashes' prefixes: the files checked, the model and data loaded, the commit
    gen, items = paths["gen"], paths["items"]
    assert f"generations {gen} is the file that was used (sha256 {sha256_file(gen)[:12]})" in text
    assert f"metrics {paths['metrics']} is the file that was used (sha256 {sha256_file(paths['metrics'])[:12]})" in text
    assert "        model sft: m revision None weights sha256 0123456789abcdef" in report.lines
    assert f"        data {items} sha256 {sha256_file(items)[:16]}" in report.lines
    assert "generated at git 89abcdef0123 (dirty=False) on test, 2026-01-01T00:00:00" in text
    # the metrics file alone audits the same way
    alone = AuditReport()
    assert audit_metrics(str(paths["metrics"]), alone)["acc1"] == 0.5 and alone.problems == []


@pytest.mark.parametrize(
    "fault,expect",
    [
        ("choice", "1 stored choice(s)/correctness flag(s) disagree with re-extraction"),
        ("acc1", "acc1: recomputed 0.500000 vs metrics file 0.750000"),
        ("pass_at_k", "pass@2: recomputed 0.500000 vs metrics file 0.250000"),
        ("flag", "1 stored choice(s)/correctness flag(s) disagree with re-extraction"),
        ("prompt_hash", "1 mismatch(es)"),
        ("cell", "cell 51.0000% vs metrics acc1 50.0000%"),
        ("edited", "changed after it was used"),
        ("items_missing", "is missing: prompt hashes cannot be recomputed"),
    ],
)
def test_each_fault_is_the_only_problem_reported(tmp_path, fault, expect):
    report = audit(build(tmp_path, fault))
    assert len(report.problems) == 1, report.text()
    assert expect in report.problems[0]
    assert "DOES NOT MATCH (1 problem(s))" in report.text()


@pytest.mark.parametrize("layout", ["items_first", "no_items"])
def test_the_chain_is_read_from_the_sidecar_as_it_lists_it(tmp_path, layout):
    report = audit(build(tmp_path, layout))
    assert report.problems == [], report.text()
    assert ("prompt hashes" in report.text()) == (layout == "items_first")


def test_metrics_made_from_a_wrong_stored_choice_are_recomputed_from_the_texts(tmp_path):
    """Pass@k is recomputed from the raw texts, not from the stored choices the faulty metrics were made from."""
    paths = build(tmp_path, "choice_scored")
    assert read_json(paths["metrics"])["pass_at_k"] == {"1": 0.5, "2": 1.0}  # 2 of 4 samples flagged correct
    report = AuditReport()
    audit_metrics(str(paths["metrics"]), report)
    assert len(report.problems) == 3, report.text()
    assert "disagree with re-extraction" in report.problems[0]
    assert report.problems[1:] == [
        "pass@1: recomputed 0.250000 vs metrics file 0.500000",
        "pass@2: recomputed 0.500000 vs metrics file 1.000000",
    ]


def test_the_cli_exits_1_on_a_fault_and_0_on_a_clean_chain(tmp_path, capsys):
    from medbridge.cli import main

    clean = build(tmp_path / "clean")
    assert main(["audit", str(clean["table"]), "--model", "sft", "--column", "organamnist"]) in (0, None)
    assert "verdict: MATCHES" in capsys.readouterr().out
    bad = build(tmp_path / "bad", "acc1")
    with pytest.raises(SystemExit) as err:
        main(["audit", str(bad["metrics"])])
    assert err.value.code == 1
