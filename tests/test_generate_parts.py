"""A model's generation split over part jobs (evaluate.job_hours, issue #21): parts running at once, on the real tiny
model through the CLI, make exactly the one-job run's generations; a missing part stops the assembly with its name;
a part never touches another part's work; the number of parts follows `medbridge plan`."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys

import pytest

from medbridge import MedbridgeError
from medbridge.data.mcq import make_items
from medbridge.data.medmnist import npz_name
from medbridge.generate.run import Part, open_shard_dir
from medbridge.io import write_jsonl

from .conftest import consistent


def generate_cmd(cfg_path, items, outs, shard_dir, *extra):
    return [
        sys.executable,
        "-m",
        "medbridge.cli",
        "generate",
        "--config",
        str(cfg_path),
        "--model",
        "base",
        "--items",
        *map(str, items),
        "--out",
        *map(str, outs),
        "--shard-dir",
        str(shard_dir),
        "--device",
        "cpu",
        *extra,
    ]


@pytest.fixture()
def two_eval_sets(cfg_with_local_model, synthetic_dir, tmp_path):
    """Two eval sets (5 and 3 items, one item per shard: 8 shards) and their one-job generations."""
    cfg = cfg_with_local_model
    cfg["evaluate"].update(shard_size=1, batch_size=1, n_samples=2, k=[1, 2], max_new_tokens=6)
    cfg = consistent(cfg)
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    items = make_items("organamnist", synthetic_dir / npz_name("organamnist", 64), "test", 1, 0)
    sets = [tmp_path / "organ-a.jsonl", tmp_path / "organ-b.jsonl"]
    write_jsonl(sets[0], items[:5])
    write_jsonl(sets[1], items[5:8])
    reference = [tmp_path / "ref" / s.name for s in sets]
    subprocess.run(generate_cmd(cfg_path, sets, reference, tmp_path / "ref-shards"), check=True, capture_output=True)
    return cfg, cfg_path, sets, reference


def test_parts_at_once_over_stale_shards_assemble_to_the_one_job_run(two_eval_sets, tmp_path):
    cfg, cfg_path, sets, reference = two_eval_sets
    shards, outs = tmp_path / "shards", [tmp_path / "gen" / s.name for s in sets]
    stale = copy.deepcopy(cfg) | {"seed": cfg["seed"] + 1}  # another seed left its shards: every part must ignore them
    (tmp_path / "stale.json").write_text(json.dumps(stale))
    subprocess.run(generate_cmd(tmp_path / "stale.json", sets, outs, shards), check=True, capture_output=True)
    receipts = [tmp_path / f"part-{i}.json" for i in (1, 2, 3)]
    procs = [
        subprocess.Popen(
            generate_cmd(cfg_path, sets, outs, shards, "--part", f"{i}-of-3", "--receipt", r),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i, r in zip((1, 2, 3), receipts)
    ]
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, out[-2000:]
    owned = [[s["path"] for s in json.loads(r.read_text())["shards"]] for r in receipts]
    assert [len(o) for o in owned] == [3, 3, 2]  # 8 shards dealt round-robin
    every = sorted(p for o in owned for p in o)
    assert len(set(every)) == 8 and every == sorted(str(p) for p in shards.glob("organ-*/shard-*.jsonl"))
    assert (shards / "organ-a" / "shard-00000.jsonl").as_posix() in owned[0]
    assert (shards / "organ-b" / "shard-00000.jsonl").as_posix() in owned[2]  # position 5 of 8: part 3
    for out in outs:
        out.unlink()
    made = {p: p.stat().st_mtime_ns for p in shards.glob("organ-*/shard-*.jsonl")}
    proc = subprocess.run(generate_cmd(cfg_path, sets, outs, shards, "--assemble", "3"), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert made == {
        p: p.stat().st_mtime_ns for p in shards.glob("organ-*/shard-*.jsonl")
    }  # assembling generates nothing
    for out, ref in zip(outs, reference):
        assert out.read_bytes() == ref.read_bytes()
        assert json.loads(out.with_name(out.name + ".provenance.json").read_text())["device"] == "cpu"


def test_a_missing_part_stops_the_assembly_naming_it(two_eval_sets, tmp_path):
    cfg, cfg_path, sets, _ = two_eval_sets
    shards, outs = tmp_path / "shards", [tmp_path / "gen" / s.name for s in sets]
    for i in (1, 3):
        subprocess.run(
            generate_cmd(cfg_path, sets, outs, shards, "--part", f"{i}-of-3", "--receipt", tmp_path / f"r{i}.json"),
            check=True,
            capture_output=True,
        )
    proc = subprocess.run(generate_cmd(cfg_path, sets, outs, shards, "--assemble", "3"), capture_output=True, text=True)
    assert proc.returncode != 0
    assert "3 of 8 generation shards of base are missing" in proc.stderr and "(part 2-of-3)" in proc.stderr
    assert "(part 1-of-3)" not in proc.stderr and not any(o.exists() for o in outs)  # nothing half written


def test_a_part_clears_only_its_own_temp_files(tmp_path):
    folder, key = tmp_path / "organ-a", {"seed": 0}
    open_shard_dir(folder, key)
    mine, theirs = folder / ".shard-00000.jsonl.x1.tmp", folder / ".shard-00001.jsonl.x2.tmp"
    mine.write_text("cut short")
    theirs.write_text("being written by another part")
    open_shard_dir(folder, key, own=[folder / "shard-00000.jsonl"])
    assert not mine.exists() and theirs.exists() and (folder / "key.json").exists()
    open_shard_dir(folder, {"seed": 1}, own=[])  # another key: the folder starts afresh, once
    assert not theirs.exists() and json.loads((folder / "key.json").read_text()) == {"seed": 1}


@pytest.mark.parametrize("text", ["0-of-2", "3-of-2", "2of3", "a-of-b", "1-of-0"])
def test_a_bad_part_is_named(text):
    with pytest.raises(MedbridgeError, match=f"part '{text}' is not <i>-of-<n>"):
        Part.parse(text)


def test_parts_deal_positions_round_robin():
    parts = [Part.parse(f"{i}-of-3") for i in (1, 2, 3)]
    assert [[p.owns(pos) for pos in range(7)].count(True) for p in parts] == [3, 2, 2]
    assert all(sum(p.owns(pos) for p in parts) == 1 for pos in range(50))
    assert str(parts[1]) == "2-of-3"


def test_the_number_of_parts_is_the_least_that_fits_job_hours(tiny_cfg):
    from medbridge.generate.parts import generation_parts
    from medbridge.plan import Assumptions, Sizes, generation_work

    cfg = copy.deepcopy(tiny_cfg)
    assert generation_parts(cfg) == {}  # the tiny profile: one generate job per model
    cfg["models"]["base"] = {"source": "hub", "id": "Qwen/Qwen2.5-VL-7B-Instruct"}  # priced as a 7B model
    cfg["evaluate"].update(shard_size=4, job_hours=0.1)
    a = Assumptions()
    sizes = Sizes(cfg, {}, a.reference_params_b, count_files=False)
    sets = sizes.eval_sets()["base"]
    work = generation_work(sizes, a, "base", sets)
    limit = 0.1 * 3600 - work.fixed_s
    n = generation_parts(cfg)["base"]
    shards = sum(math.ceil(s.items / 4) for s in sets)
    assert n == min(shards, math.ceil(work.budget_s / limit)) and n >= 2
    assert n == shards or (n - 1) * limit < work.budget_s <= n * limit
    cfg["evaluate"]["job_hours"] = work.fixed_s / 3600 * 0.9
    with pytest.raises(MedbridgeError, match="is shorter than loading base"):
        generation_parts(cfg)


def test_parts_never_depend_on_data_files(tiny_cfg, synthetic_dir):
    """The split is fixed by the config, so the DAG is the same before and after the data arrives; the plan's own
    estimate counts the files once they exist."""
    from medbridge.plan import smallest_class

    cfg = copy.deepcopy(tiny_cfg)
    cfg["data"]["root"] = str(synthetic_dir)
    assert smallest_class(cfg, "organamnist", "test")[1] == "counted"
    assert smallest_class(cfg, "organamnist", "test", count_files=False)[1] == "synthetic"
