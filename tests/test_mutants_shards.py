"""Shard reuse by value (issue #25): every field of the shard key, and a same-size change to the item set,
regenerates; changing only `evaluate.answer_tag` keeps the texts and re-reads the answers. A stand-in backend
counts what it is asked to generate (no model runs); the model fingerprint is the real one, of a small folder."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import medbridge.generate.run as gen_run
from medbridge.generate import Completion
from medbridge.generate.run import EvalJob, run_generation, seeding
from medbridge.io import read_jsonl, write_jsonl

from .conftest import filled

OPTIONS = {"A": "cyst", "B": "tumour", "C": "normal"}


class CountingBackend:
    """Answers every item with two closed tags, A then B (so `answer_tag` decides the choice), and records the ids
    it generated."""

    calls: list[str] = []

    def __init__(self, cfg, model_name, device="cpu"):
        pass

    def generate(self, items, settings, seed, **_):
        CountingBackend.calls += [it["id"] for it in items]
        text = "<think>x</think><answer>A</answer> no, <answer>B</answer>"
        return [Completion(text, [text] * settings.n_samples) for _ in items]


def _item(i: int, question: str = "Which organ?") -> dict:
    return {
        "id": f"organ-{i}",
        "question": question,
        "options": OPTIONS,
        "answer": "B",
        "images": [{"npz": "x.npz", "index": i}],
    }


@pytest.fixture()
def setup(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(gen_run, "get_backend", lambda name: CountingBackend)
    CountingBackend.calls = []
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"one")
    cfg = copy.deepcopy(tiny_cfg)
    cfg["models"] = {"base": {"source": "local", "path": str(model)}}
    cfg["evaluate"].update(
        models=["base"],
        n_samples=2,
        k=[1, 2],
        backend="hf",
        batch_size=4,
        shard_size=2,
        min_pixels=None,
        max_pixels=None,
        answer_tag="first",
    )
    items = tmp_path / "items.jsonl"
    write_jsonl(items, [_item(i) for i in range(4)])
    job = EvalJob(str(items), str(tmp_path / "gen.jsonl"))
    run_generation(cfg, "base", [job])
    assert CountingBackend.calls == [f"organ-{i}" for i in range(4)]
    CountingBackend.calls = []
    return cfg, job, model


def _run(cfg, job, device="cpu") -> list[str]:
    CountingBackend.calls = []
    run_generation(cfg, "base", [job], device=device)
    return CountingBackend.calls


def test_same_key_and_items_reuse_every_shard(setup):
    cfg, job, _ = setup
    assert _run(cfg, job) == []
    # the vLLM backend seeds per request, so its key ignores the HF batch size
    vllm = copy.deepcopy(cfg)
    vllm["evaluate"]["backend"] = "vllm"
    assert len(_run(vllm, job)) == 4  # another backend regenerates ...
    vllm["evaluate"]["batch_size"] = 16
    assert _run(vllm, job) == []  # ... but not for a batch size it does not use


@pytest.mark.parametrize(
    "path,value",
    [
        (("seed",), 1),
        (("evaluate", "backend"), "vllm"),
        (("evaluate", "temperature"), 0.3),
        (("evaluate", "n_samples"), 3),
        (("evaluate", "max_new_tokens"), 7),
        (("evaluate", "min_pixels"), 3136),
        (("evaluate", "max_pixels"), 100352),
        (("evaluate", "batch_size"), 2),
    ],  # HF samples are seeded per batch: another batch size, other texts
)
def test_each_key_field_regenerates(setup, path, value):
    cfg, job, _ = setup
    changed = copy.deepcopy(cfg)
    node = changed
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert len(_run(changed, job)) == 4


def test_device_and_model_files_regenerate(setup):
    cfg, job, model = setup
    assert len(_run(cfg, job, device="cuda")) == 4
    assert _run(cfg, job, device="cuda") == []
    assert len(_run(cfg, job, device="cpu")) == 4
    (model / "weights.bin").write_bytes(b"two")  # retrained in place: same path, other weights
    assert len(_run(cfg, job)) == 4


def test_a_same_size_change_to_the_items_regenerates_that_shard(setup):
    cfg, job, _ = setup
    items = [_item(i) for i in range(4)]
    items[2] = _item(9)  # shard 1 keeps its size, with another item
    write_jsonl(job.items, items)
    assert _run(cfg, job) == ["organ-9", "organ-3"]
    items[3] = _item(3, question="Which organ is shown?")  # same id, another prompt
    write_jsonl(job.items, items)
    assert _run(cfg, job) == ["organ-9", "organ-3"]
    assert [r["id"] for r in read_jsonl(job.out)] == ["organ-0", "organ-1", "organ-9", "organ-3"]


def test_answer_tag_rereads_the_kept_texts(setup):
    cfg, job, _ = setup
    first = read_jsonl(job.out)
    assert {r["greedy"]["choice"] for r in first} == {"A"} and not any(r["greedy"]["correct"] for r in first)
    last = copy.deepcopy(cfg)
    last["evaluate"]["answer_tag"] = "last"
    assert _run(last, job) == []  # nothing generated again
    again = read_jsonl(job.out)
    assert [r["greedy"]["text"] for r in again] == [r["greedy"]["text"] for r in first]
    assert all(r["answer_tag"] == "last" and r["greedy"]["choice"] == "B" and r["greedy"]["correct"] for r in again)
    assert all(s["choice"] == "B" and s["correct"] for r in again for s in r["samples"])


def test_the_key_file_names_the_device_kind(setup):
    cfg, job, _ = setup
    folder = f"{job.out}.shards"
    assert json.loads(Path(folder, "key.json").read_text())["device"] == "cpu"
    _run(cfg, job, device="cuda")
    assert json.loads(Path(folder, "key.json").read_text())["device"] == "gpu"


def test_an_unset_batch_size_keys_as_the_hf_backends_default(setup):
    """Stating the HF backend's default batch size (8) changes nothing the texts depend on: no regeneration."""
    cfg, job, _ = setup
    unset = copy.deepcopy(cfg)
    del unset["evaluate"]["batch_size"]
    assert len(_run(filled(unset), job)) == 4
    explicit = copy.deepcopy(unset)
    explicit["evaluate"]["batch_size"] = 8
    assert _run(explicit, job) == []


@pytest.mark.parametrize("damage", ["key_garbled", "key_missing", "shard_truncated"])
def test_a_damaged_shard_folder_regenerates(setup, damage):
    cfg, job, _ = setup
    folder = Path(f"{job.out}.shards")
    if damage == "key_garbled":
        (folder / "key.json").write_text('{"model": ')
    elif damage == "key_missing":
        (folder / "key.json").unlink()
    else:
        shard = folder / "shard-00001.jsonl"
        shard.write_text(shard.read_text()[:-40])  # a torn last line
    expect = ["organ-2", "organ-3"] if damage == "shard_truncated" else [f"organ-{i}" for i in range(4)]
    assert _run(cfg, job) == expect
    assert len(read_jsonl(job.out)) == 4


def test_stale_temp_files_are_cleared_and_shards_live_under_shard_root(setup, tmp_path):
    cfg, job, _ = setup
    folder = Path(f"{job.out}.shards")
    (folder / ".shard-00001.jsonl.tmp").write_text("half a shard")  # left by a SIGKILLed attempt
    assert _run(cfg, job) == []
    assert not list(folder.glob(".*.tmp"))
    # under shard_root, an eval set's shards sit in <shard_root>/<eval set>/
    CountingBackend.calls = []
    run_generation(cfg, "base", [job], shard_root=str(tmp_path / "shards"))
    assert len(CountingBackend.calls) == 4
    assert sorted(p.name for p in (tmp_path / "shards" / "gen").iterdir()) == [
        "key.json",
        "shard-00000.jsonl",
        "shard-00001.jsonl",
    ]


def test_the_default_shard_size_is_256_items(setup, tmp_path):
    cfg, job, _ = setup
    unset = copy.deepcopy(cfg)
    del unset["evaluate"]["shard_size"]
    items = tmp_path / "many.jsonl"
    write_jsonl(items, [_item(i) for i in range(257)])
    run_generation(filled(unset), "base", [EvalJob(str(items), str(tmp_path / "many-gen.jsonl"))])
    shards = sorted((tmp_path / "many-gen.jsonl.shards").glob("shard-*.jsonl"))
    assert [len(read_jsonl(s)) for s in shards] == [256, 1]


def test_how_each_backend_seeds(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg)
    cfg["evaluate"]["backend"] = "hf"
    assert seeding(cfg, "cpu") == seeding(cfg, "cuda") == "per-batch"
    cfg["evaluate"]["backend"] = "vllm"
    assert (seeding(cfg, "cpu"), seeding(cfg, "cuda")) == ("engine", "per-request")


# --- generation in parts (issue #21 item 3): which shards a part owns, what assembling reports ---


@pytest.mark.parametrize("text,index,count", [("1-of-1", 1, 1), ("2-of-8", 2, 8), ("8-of-8", 8, 8)])
def test_a_part_parses_and_prints_as_written(text, index, count):
    part = gen_run.Part.parse(text)
    assert (part.index, part.count) == (index, count) and str(part) == text
    with pytest.raises(AttributeError):  # a record: frozen
        part.index = 3


@pytest.mark.parametrize("text", ["0-of-8", "9-of-8", "2of8", "x-of-2", "2-of-", "-1-of-2", ""])
def test_a_part_outside_one_to_n_is_refused_by_name(text):
    from medbridge import MedbridgeError

    with pytest.raises(MedbridgeError, match=f"part '{text}' is not <i>-of-<n>"):
        gen_run.Part.parse(text)


def test_the_parts_of_a_run_split_its_shards_round_robin():
    parts = [gen_run.Part(i, 3) for i in (1, 2, 3)]
    owned = [[p for p in range(9) if part.owns(p)] for part in parts]
    assert owned == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]  # every part a share of every stretch; each shard once


def _many(tmp_path, n_items: int) -> EvalJob:
    items = tmp_path / f"items-{n_items}.jsonl"
    write_jsonl(items, [_item(i) for i in range(n_items)])
    return EvalJob(str(items), str(tmp_path / f"gen-{n_items}.jsonl"))


def test_a_part_generates_only_its_shards_and_assembling_names_the_rest_by_part(setup, tmp_path):
    cfg, _, _ = setup
    job = _many(tmp_path, 6)  # shard_size 2: three shards
    gen_run.generate_shards(cfg, "base", [job], "cpu", None, part=gen_run.Part(2, 3))
    assert CountingBackend.calls == ["organ-2", "organ-3"]  # shard 1 of 0..2
    with pytest.raises(gen_run.MedbridgeError) as err:
        gen_run.assemble(cfg, "base", [job], None, "cpu", parts=3)
    msg = str(err.value)
    assert msg.startswith("2 of 3 generation shards of base are missing")
    assert "shard-00000.jsonl (part 1-of-3)" in msg and "shard-00002.jsonl (part 3-of-3)" in msg
    assert "shard-00001" not in msg and " ..." not in msg
    assert msg.endswith("run their generate_part jobs (snakemake does) or generate without --assemble")
    gen_run.generate_shards(cfg, "base", [job], "cpu", None, part=gen_run.Part(1, 3))
    gen_run.generate_shards(cfg, "base", [job], "cpu", None, part=gen_run.Part(3, 3))
    assert gen_run.assemble(cfg, "base", [job], None, "cpu", parts=3) == {job.out: 6}
    assert [r["id"] for r in read_jsonl(job.out)] == [f"organ-{i}" for i in range(6)]


def test_assembling_lists_five_missing_shards_then_an_ellipsis(setup, tmp_path):
    cfg, _, _ = setup
    job = _many(tmp_path, 14)  # seven shards, none made
    with pytest.raises(gen_run.MedbridgeError) as err:
        gen_run.assemble(cfg, "base", [job], None, "cpu", parts=None)
    msg = str(err.value)
    assert msg.startswith("7 of 7 generation shards")
    assert [f"shard-0000{i}.jsonl" in msg for i in range(7)] == [True] * 5 + [False] * 2
    assert "shard-00004.jsonl ...; run" in msg and "(part" not in msg
    five = _many(tmp_path, 10)  # five shards: all listed, no ellipsis
    with pytest.raises(gen_run.MedbridgeError, match=r"shard-00004\.jsonl; run"):
        gen_run.assemble(cfg, "base", [five], None, "cpu")


def test_an_assembling_job_reports_the_device_its_shards_were_made_on(setup, tmp_path):
    cfg, job, _ = setup  # made on the cpu by the fixture
    assert gen_run.shard_device(cfg, "base", [job], None) == "cpu"
    other = _many(tmp_path, 4)
    assert gen_run.shard_device(cfg, "base", [other], None) == "cpu"  # no shard made yet: the default
    gen_run.generate_shards(cfg, "base", [other], "cuda", None)
    assert gen_run.shard_device(cfg, "base", [other], None) == "gpu"
    assert gen_run.shard_device(cfg, "base", [job, other], None) == "cpu"  # mixed: no one device to report
