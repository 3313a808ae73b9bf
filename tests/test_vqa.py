"""Section 4 data: the Table 3 benchmark adapters on raw-shaped fixtures, the PMC-VQA modality labelling and
balanced draw, and the Table 3 verb on hand-made metrics."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from medbridge import MedbridgeError
from medbridge.data.vqa import check_vqa_config, get_adapter, names
from medbridge.data.vqa.base import Skip, closed_mcq, parse_options
from medbridge.data.vqa.build import build_items, write_fixture
from medbridge.io import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ["pmc_vqa", "mmmu_health", "medxpertqa_mm", "pathvqa", "slake", "vqa_rad"]


@pytest.fixture()
def cfg(tiny_cfg) -> dict:
    cfg = copy.deepcopy(tiny_cfg)
    cfg["vqa"].pop("max_items", None)  # every usable row becomes an item, so counts are exact
    return cfg


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> Path:
    """One raw-shaped fixture per source, written once for the module."""
    from medbridge.config import validate_config

    cfg = validate_config(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    root = tmp_path_factory.mktemp("vqa_fixtures")
    for name in [*BENCHMARKS, "pmc_vqa_train", "medvlthinker_eval"]:
        write_fixture(cfg, name, root / name)
    return root


def build(cfg, name, src, out: Path):
    out.mkdir(parents=True, exist_ok=True)
    summary = build_items(cfg, name, out / "items.jsonl", out / "images", out / "skipped.json", src)
    return read_jsonl(out / "items.jsonl"), summary


def test_registry_lists_the_six_benchmarks_and_the_pools():
    assert names("benchmark") == sorted(BENCHMARKS)
    assert {"pmc_vqa_train", "medvlthinker_eval"} <= set(names())
    with pytest.raises(MedbridgeError, match="unknown benchmark 'pmc_vqa_train'"):
        get_adapter("pmc_vqa_train", "benchmark")


# What each adapter must do with its fixture: item count, skip reasons (with counts), and per-item checks.
EXPECT = {
    "pmc_vqa": (11, {"options A-D: an option is empty": 1}),
    "mmmu_health": (15, {"question_type 'open': only multiple-choice questions have options": 5}),
    "medxpertqa_mm": (12, {}),
    "pathvqa": (
        8,
        {
            "answer_type 'OPEN': only closed questions are evaluated": 2,
            "closed question whose answer is neither yes/no nor one of two alternatives named in the question": 2,
        },
    ),
}
EXPECT["slake"] = EXPECT["vqa_rad"] = EXPECT["pathvqa"]


@pytest.mark.parametrize("name", BENCHMARKS)
def test_adapter_maps_its_raw_fixture_to_mcq_items(cfg, fixtures, tmp_path, name):
    items, summary = build(cfg, name, fixtures / name, tmp_path / name)
    n_items, skips = EXPECT[name]
    assert len(items) == summary["n_items"] == n_items
    assert {r: v["count"] for r, v in summary["skipped"].items()} == skips
    assert summary["n_rows"] == n_items + sum(skips.values())  # every row is an item or a counted skip
    assert len({it["id"] for it in items}) == len(items)
    for it in items:
        assert it["source"] == name and it["label"] == -1
        assert list(it["options"]) == [chr(65 + i) for i in range(len(it["options"]))]
        assert it["answer"] in it["options"] and it["answer_text"] == it["options"][it["answer"]]
        for ref in it["images"]:
            assert Path(ref["path"]).parent == tmp_path / name / "images"
            with Image.open(ref["path"]) as im:
                assert im.size == (56, 56)
    if name == "pmc_vqa":  # "Question: ...\nThe choices are: ..." -> the bare question; A-D columns -> options
        assert all(not it["question"].startswith("Question:") and "choices" not in it["question"] for it in items)
        assert all(len(it["options"]) == 4 for it in items)
    if name == "mmmu_health":  # Python-literal option lists parsed; <image N> placeholders removed; several images
        assert all("<image" not in it["question"] for it in items)
        assert all(len(it["options"]) == 4 for it in items)
        assert max(len(it["images"]) for it in items) == 2
        assert {it["split"] for it in items} == {"validation", "dev"}
        assert {it["meta"]["config"] for it in items} == {
            "Basic_Medical_Science",
            "Clinical_Medicine",
            "Diagnostics_and_Laboratory_Medicine",
            "Pharmacy",
            "Public_Health",
        }
    if name == "medxpertqa_mm":  # options dict (A-E), the "Answer Choices" tail cut, images read from images/
        assert all("Answer Choices" not in it["question"] and len(it["options"]) == 5 for it in items)
        assert all(it["id"].startswith("medxpertqa_mm-MM-") for it in items)
        assert {it["split"] for it in items} == {"test"}  # the dev split is not part of the benchmark
    if name in ("pathvqa", "slake", "vqa_rad"):  # closed only, as 2-option MCQs
        assert all(it["meta"]["answer_type"] == "CLOSED" for it in items)
        yes_no = [it for it in items if it["options"] == {"A": "yes", "B": "no"}]
        either = [it for it in items if it["options"] == {"A": "left", "B": "right"}]
        assert len(yes_no) + len(either) == len(items) and yes_no and either
        assert all(it["modality"] == get_adapter(name).modality for it in items)


def test_consolidated_medvlthinker_source_selects_rows_by_dataset_name(cfg, fixtures, tmp_path):
    cfg["vqa"]["source"] = "medvlthinker"
    cfg["vqa"]["consolidated"] = {"path": str(fixtures / "medvlthinker_eval"), "split": "test"}
    raw = read_rows(fixtures / "medvlthinker_eval" / "default", "test")
    for name, dataset_name in (("slake", "slake_closed"), ("mmmu_health", "MMMU-medical")):
        items, summary = build(cfg, name, None, tmp_path / name)
        wanted = [r for r in raw if r["dataset_name"] == dataset_name]
        assert len(items) == summary["n_rows"] == len(wanted) > 0
        for it, r in zip(items, wanted):  # options come from the JSON string, the answer from answer_label
            assert it["options"] == json.loads(r["options"]) and it["answer"] == r["answer_label"]
            assert it["source"] == name and it["meta"]["dataset_name"] == dataset_name
    assert items[0]["meta"]["img_type"] == "['CT Scans']"  # MMMU rows: fields from `misc`


def read_rows(path: Path, split: str) -> list[dict]:
    from datasets import load_from_disk

    return list(load_from_disk(str(path))[split].remove_columns(["images"]))


def test_max_items_is_a_seeded_draw_and_not_drawn_rows_are_counted(cfg, fixtures, tmp_path):
    cfg["vqa"]["max_items"] = 5
    a, sa = build(cfg, "medxpertqa_mm", fixtures / "medxpertqa_mm", tmp_path / "a")
    b, _ = build(cfg, "medxpertqa_mm", fixtures / "medxpertqa_mm", tmp_path / "b")
    cfg["seed"] = 1
    c, _ = build(cfg, "medxpertqa_mm", fixtures / "medxpertqa_mm", tmp_path / "c")
    assert len(a) == 5 and sa["n_not_drawn"] == 7
    assert [x["id"] for x in a] == [x["id"] for x in b] != [x["id"] for x in c]
    assert len(list((tmp_path / "a" / "images").iterdir())) == sum(len(x["images"]) for x in a)


def test_fixtures_mode_needs_a_fixture_folder(cfg, tmp_path):
    with pytest.raises(MedbridgeError, match="vqa-fixture"):
        build(cfg, "pmc_vqa", None, tmp_path / "x")
    with pytest.raises(MedbridgeError, match="does not exist"):
        build(cfg, "pmc_vqa", tmp_path / "nowhere", tmp_path / "x")


def test_parse_options_reads_every_source_format():
    assert parse_options('{"A": "x", "B": "y"}') == {"A": "x", "B": "y"}  # MedVLThinker: JSON string of a dict
    assert parse_options("['x', \"y's\", 'z']") == {"A": "x", "B": "y's", "C": "z"}  # MMMU: Python literal list
    assert parse_options({"A": "x", "B": "y", "C": None}) == {"A": "x", "B": "y"}  # Arrow struct with a gap
    assert parse_options({"A": "A:Diffuse", "B": " B: Focal "}) == {"A": "Diffuse", "B": "Focal"}  # PMC prefixes
    for bad in ("not options", "[]", "['only one']", {"A": "x", "C": "y"}, {"AB": "x", "B": "y"}, {"A": "", "B": "y"}):
        with pytest.raises(Skip):
            parse_options(bad)


def test_closed_questions_become_two_option_mcqs():
    assert closed_mcq("Is there a mass?", "Yes") == ({"A": "yes", "B": "no"}, "A")
    assert closed_mcq("Is there a mass?", "no.") == ({"A": "yes", "B": "no"}, "B")
    assert closed_mcq("Is the lesion in the liver or the spleen?", "spleen") == ({"A": "liver", "B": "spleen"}, "B")
    with pytest.raises(Skip):  # the answer is not one of the alternatives
        closed_mcq("Is the lesion in the liver or the spleen?", "kidney")
    with pytest.raises(Skip):
        closed_mcq("How many lesions?", "two")


def test_vqa_config_checks(cfg):
    check_vqa_config(cfg)
    for path, value, match in (
        (("benchmarks",), [{"name": "pmc_vqa"}, {"name": "nope"}], "unknown benchmark 'nope'"),
        (("benchmarks",), [{"name": "slake"}, {"name": "slake"}], "twice"),
        (("models",), ["base", "ghost"], "unknown model role 'ghost'"),
        (("pmc", "labeller"), "vlm", "model role 'judge'"),
        (("pmc", "categories"), ["CT", "MRI"], "must include 'none'"),
        (("pmc", "categories"), ["CT", "sonar", "none"], "unknown"),
    ):
        bad = copy.deepcopy(cfg)
        target = bad["vqa"]
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        with pytest.raises(MedbridgeError, match=match):
            check_vqa_config(bad)


# --- PMC-VQA: modality labels and the balanced subset ---


def test_keyword_labeller_rules():
    from medbridge.data.pmc import keyword_label

    cats = ["MRI", "CT", "ultrasound", "X-ray", "microscopy", "dermatology", "OCT", "fundus", "PET", "none"]
    assert keyword_label("Axial PET/CT fusion image", cats)[0] == "PET"
    assert keyword_label("Axial PET/CT fusion image", [c for c in cats if c != "PET"])[0] == "CT"
    assert keyword_label("What layer is thickened in the OCT scan?", cats)[0] == "OCT"
    assert keyword_label("H&E staining at 40x", cats)[0] == "microscopy"
    assert keyword_label("T2-weighted image of the knee", cats)[0] == "MRI"
    assert keyword_label("What does the bar chart show?", cats) == ("none", "")


def test_vlm_answer_parsing():
    from medbridge.data.pmc import parse_label

    cats = ["MRI", "CT", "X-ray", "OCT", "none"]
    assert parse_label("CT", cats) == "CT"
    assert parse_label("The image is an x-ray radiograph.", cats) == "X-ray"
    assert parse_label("OCT (not CT)", cats) == "OCT"  # the first category named wins
    assert parse_label("I cannot tell", cats) is None


def test_quotas_are_balanced_and_capped():
    import numpy as np

    from medbridge.data.pmc import quotas

    rng = np.random.default_rng(0)
    assert quotas({"a": 10, "b": 2, "c": 10}, 12, rng) == {"a": 5, "b": 2, "c": 5}
    q = quotas({"a": 10, "b": 2, "c": 10}, 13, rng)
    assert q["b"] == 2 and sorted([q["a"], q["c"]]) == [5, 6]
    q = quotas({"a": 4, "b": 4, "c": 4, "d": 0}, 10, rng)
    assert sum(q.values()) == 10 and q["d"] == 0 and max(q.values()) - min(q[c] for c in "abc") <= 1
    with pytest.raises(MedbridgeError, match="only 12 labelled questions .* subset of 13"):
        quotas({"a": 10, "b": 2}, 13, rng)


def test_balanced_draw_counts_and_seed():
    from medbridge.data.pmc import balanced_draw

    rows = [
        {"id": f"q{i}", "label": lab} for i, lab in enumerate(["CT"] * 30 + ["MRI"] * 20 + ["OCT"] * 3 + ["none"] * 9)
    ]
    cats = ["CT", "MRI", "OCT", "none"]
    chosen, counts = balanced_draw(rows, cats, 20, seed=0)
    drawn = {c: sum(r["label"] == c for r in chosen) for c in cats}
    # OCT has only 3: all of them; the other 17 go 6/6/5 over the three others (which one gets 5 is seeded)
    assert drawn["OCT"] == 3 and sorted([drawn["CT"], drawn["MRI"], drawn["none"]]) == [5, 6, 6]
    assert {c: v["drawn"] for c, v in counts.items()} == drawn and counts["OCT"]["available"] == 3
    assert [r["id"] for r in balanced_draw(rows, cats, 20, seed=0)[0]] == [r["id"] for r in chosen]
    assert [r["id"] for r in balanced_draw(rows, cats, 20, seed=1)[0]] != [r["id"] for r in chosen]
    assert len({r["id"] for r in chosen}) == 20


def test_pmc_label_and_balance_make_training_items(cfg, fixtures, tmp_path):
    from medbridge.data.pmc import build_balanced, label_pool

    rows, summary = label_pool(cfg, fixtures / "pmc_vqa_train")
    cats = cfg["vqa"]["pmc"]["categories"]
    assert summary["n_labelled"] == len(rows) == 72 and set(summary["counts"]) == set(cats)
    assert all(n == 8 for n in summary["counts"].values())  # the fixture's questions name each modality 8 times
    out = tmp_path / "pmc_vqa_balanced"
    s = build_balanced(cfg, rows, out / "train_items.jsonl", out / "images", fixtures / "pmc_vqa_train")
    items = read_jsonl(out / "train_items.jsonl")
    assert len(items) == s["n_items"] == 24
    by_mod = pd.Series([it["modality"] for it in items]).value_counts()
    assert set(by_mod.index) == set(cats) and by_mod.max() - by_mod.min() <= 1
    label = {r["id"]: r["label"] for r in rows}
    assert all(it["modality"] == label[it["id"]] and Path(it["images"][0]["path"]).exists() for it in items)
    cfg["vqa"]["pmc"]["subset_size"] = 73
    with pytest.raises(MedbridgeError, match="only 72 labelled questions"):
        build_balanced(cfg, rows, out / "x.jsonl", out / "x_images", fixtures / "pmc_vqa_train")
    cfg["vqa"]["pmc"].update(subset_size=10, exclude=["none"])
    build_balanced(cfg, rows, out / "y.jsonl", out / "y_images", fixtures / "pmc_vqa_train")
    assert "none" not in {it["modality"] for it in read_jsonl(out / "y.jsonl")}


def test_vlm_labeller_runs_the_judge_model_batched(cfg, fixtures, tiny_model_dir):
    from medbridge.data.pmc import label_pool, parse_label

    cfg["models"]["judge"] = {"source": "local", "path": str(tiny_model_dir)}
    cfg["vqa"]["pmc"].update(labeller="vlm", judge="judge", batch_size=5, max_new_tokens=4, pool_size=7)
    rows, summary = label_pool(cfg, fixtures / "pmc_vqa_train")
    cats = cfg["vqa"]["pmc"]["categories"]
    assert len(rows) == 7 and summary["judge"] == str(tiny_model_dir)
    for r in rows:  # an answer naming no category is kept as none, flagged and counted
        assert r["label"] in cats and r["parsed"] == (parse_label(r["raw"], cats) is not None)
    assert summary["n_unparsed"] == sum(not r["parsed"] for r in rows)


def test_vlm_labeller_resumes_from_its_shards_at_its_own_pixel_bounds(
    cfg, fixtures, tiny_model_dir, tmp_path, monkeypatch
):
    """A labelling job killed at its time limit keeps its whole shards; the next attempt labels only the rest, and
    gives the same labels as one uninterrupted run. Shards made under another key (pixel bounds) are discarded. The
    backend gets the labeller's own pixel bounds, not the evaluation's."""
    from medbridge.data import pmc
    from medbridge.score import judge

    cfg["models"]["judge"] = {"source": "local", "path": str(tiny_model_dir)}
    cfg["evaluate"].update(min_pixels=1003520, max_pixels=12845056)  # the paper's evaluation bounds
    cfg["vqa"]["pmc"].update(
        labeller="vlm", judge="judge", batch_size=4, shard_size=8, pool_size=20, min_pixels=3136, max_pixels=200704
    )
    calls, real = [], judge.judge_backend

    class Dies:  # the real tiny judge, killed (as by SLURM's time limit) during its `die_at`-th call
        def __init__(self, c, role, purpose, die_at):
            self.inner, self.die_at = real(c, role, purpose), die_at
            calls.append({k: c["evaluate"].get(k) for k in ("min_pixels", "max_pixels")} | {"purpose": purpose})

        def complete(self, images, prompts, n):
            self.die_at -= 1
            if self.die_at == 0:
                raise KeyboardInterrupt("time limit")
            return self.inner.complete(images, prompts, n)

    shards = tmp_path / "shards"
    monkeypatch.setattr(
        judge, "judge_backend", lambda c, role, purpose: Dies(c, role, purpose, die_at=5)
    )  # in the 3rd shard (2 calls each)
    with pytest.raises(KeyboardInterrupt):
        pmc.label_pool(cfg, fixtures / "pmc_vqa_train", shards)
    assert sorted(p.name for p in shards.glob("shard-*")) == ["shard-00000.jsonl", "shard-00001.jsonl"]
    assert calls == [{"min_pixels": 3136, "max_pixels": 200704, "purpose": "label"}]  # its own bounds and context
    monkeypatch.setattr(judge, "judge_backend", lambda c, role, purpose: Dies(c, role, purpose, die_at=0))
    rows, summary = pmc.label_pool(cfg, fixtures / "pmc_vqa_train", shards)
    assert summary["shards"] | {"folder": None} == {"folder": None, "n": 3, "reused": 2, "shard_size": 8}
    monkeypatch.setattr(judge, "judge_backend", real)
    fresh, _ = pmc.label_pool(cfg, fixtures / "pmc_vqa_train")  # uninterrupted, no shards kept
    assert rows == fresh and len(rows) == 20
    cfg["vqa"]["pmc"]["max_pixels"] = 401408  # other bounds, other labels: nothing reused
    _, again = pmc.label_pool(cfg, fixtures / "pmc_vqa_train", shards)
    assert again["shards"]["reused"] == 0


# --- Table 3 ---


def metrics_json(path: Path, model: str, evalset: str, acc1: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "model": model,
                "evalset": evalset,
                "n_items": 200,
                "n_samples": 1,
                "acc1": acc1,
                "acc1_ci": [acc1 - 0.05, acc1 + 0.05],
                "pass_at_k": {"1": acc1},
            }
        )
    )
    return path


def test_table3_verb_on_hand_made_metrics(tmp_path):
    from medbridge.cli import main

    cfg = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    assert "med_r1" in cfg["vqa"]["models"]  # all seven of the paper's rows (Med-R1 by its sub-folder checkpoint)
    cfg_path = tmp_path / "paper.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    models, benches = cfg["vqa"]["models"], [b["name"] for b in cfg["vqa"]["benchmarks"]]
    paths = [
        metrics_json(tmp_path / "m" / m / f"{b}.json", m, b, 0.40 + 0.01 * i + 0.02 * j)
        for i, m in enumerate(models)
        for j, b in enumerate(benches)
    ]
    csv, md = tmp_path / "t3.csv", tmp_path / "t3.md"
    assert (
        main(["table3", "--config", str(cfg_path), "--metrics", *map(str, paths), "--csv", str(csv), "--md", str(md)])
        == 0
    )
    df = pd.read_csv(csv)
    cell = df[(df.model == "base") & (df.benchmark == "pmc_vqa")].iloc[0]
    assert cell.acc1 == pytest.approx(40.0) and cell.reported_acc1 == pytest.approx(53.00)
    assert cell.reported_as == "Qwen/Qwen2.5-VL-7B-Instruct"
    ours = df[(df.model == "ours") & (df.benchmark == "slake")].iloc[0]  # a DAG-made role: by vqa.reported_rows
    assert ours.reported_acc1 == pytest.approx(88.0)
    med_r1 = df[(df.model == "med_r1") & (df.benchmark == "vqa_rad")].iloc[0]  # a hub role: by its HF id
    assert med_r1.reported_acc1 == pytest.approx(62.0)
    avg = df[(df.model == "sft") & (df.benchmark == "avg")].iloc[0]
    i = models.index("sft")
    assert avg.acc1 == pytest.approx(100 * sum(0.40 + 0.01 * i + 0.02 * j for j in range(6)) / 6)
    assert avg.reported_acc1 == pytest.approx(62.16)  # the paper's printed average
    text = md.read_text()
    assert "reported (paper: OctoMed/OctoMed-7B)" in text and "40.00 [35.0, 45.0]" in text
    assert Path(f"{csv}.provenance.json").exists()
    # a missing (model, benchmark) is an error naming it, not a blank cell
    assert (
        main(
            ["table3", "--config", str(cfg_path), "--metrics", *map(str, paths[1:]), "--csv", str(csv), "--md", str(md)]
        )
        == 2
    )


def test_source_counts_per_benchmark_and_source(cfg, fixtures, tmp_path):
    """Table 3 item counts from the authors' source (MedVLThinker-Eval) beside the raw-source adapters."""
    import subprocess
    import sys

    from medbridge.data.vqa.build import source_counts

    cfg["vqa"]["max_items"] = 5
    rows = {(r["benchmark"], r["source"]): r for r in source_counts(cfg, ["medvlthinker", "fixtures"], fixtures)}
    assert set(rows) == {(b, s) for b in BENCHMARKS for s in ("medvlthinker", "fixtures")}
    raw = read_rows(fixtures / "medvlthinker_eval" / "default", "test")
    for name in BENCHMARKS:
        cons, own = rows[(name, "medvlthinker")], rows[(name, "fixtures")]
        wanted = sum(r["dataset_name"] == get_adapter(name).consolidated_name for r in raw)
        assert cons["n_rows"] == cons["n_candidates"] == wanted > 0  # MedVLThinker-Eval rows are all MCQs
        for r in (cons, own):
            assert r["n_candidates"] + r["n_skipped"] == r["n_rows"]
            assert r["n_items"] == min(5, r["n_candidates"])
    # the raw closed-question sources skip their open questions, with the reason
    assert rows[("slake", "fixtures")]["n_skipped"] > 0 and "only closed" in rows[("slake", "fixtures")]["skipped"]
    out = tmp_path / "counts.csv"
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "medbridge.cli",
            "vqa-counts",
            "--config",
            str(cfg_path),
            "--sources",
            "medvlthinker",
            "fixtures",
            "--fixtures",
            str(fixtures),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert len(pd.read_csv(out)) == 2 * len(BENCHMARKS)
    with pytest.raises(MedbridgeError, match="--fixtures"):
        source_counts(cfg, ["fixtures"])
