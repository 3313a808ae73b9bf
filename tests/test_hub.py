"""Hub models through one cache: the download step fills it (a localrule on the login node), model-loading jobs read
it offline. Tested without network: a hub-shaped cache (blobs, snapshots/<commit>/, refs/main, the layout
huggingface_hub writes) is made here from the tiny model."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medbridge.data.medmnist import npz_name
from medbridge.io import sha256_file

from .conftest import ROOT, consistent

REPO = "medbridge-test/tiny-vlm"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def make_hub_cache(root: Path, model_dir: Path) -> Path:
    repo = root / ("models--" + REPO.replace("/", "--"))
    snap = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    for f in sorted(p for p in model_dir.iterdir() if p.is_file()):
        blob = repo / "blobs" / sha256_file(f)
        shutil.copyfile(f, blob)
        (snap / f.name).symlink_to(Path("../../blobs") / blob.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return root


def make_hub_dataset_cache(root: Path, repo_id: str, splits: dict) -> Path:
    """A dataset repo in the hub cache's layout: {split: datasets.Dataset} as data/<split>-00000-of-00001.parquet
    (the files the hub serves for a one-config dataset), blobs, snapshots/<commit>/, refs/main."""
    repo = root / ("datasets--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    (snap / "data").mkdir(parents=True)
    for split, ds in splits.items():
        tmp = repo / f"{split}.parquet"
        ds.to_parquet(str(tmp))
        blob = repo / "blobs" / sha256_file(tmp)
        tmp.rename(blob)
        (snap / "data" / f"{split}-00000-of-00001.parquet").symlink_to(Path("../../../blobs") / blob.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return root


def fixture_dataset_cache(root: Path, cfg: dict) -> Path:
    """The paper's two hub datasets (MedVLThinker-Eval, MedVLThinker-pmc_vqa) made from the fixtures, hub-shaped."""
    from datasets import load_from_disk

    from medbridge.data.vqa import get_adapter
    from medbridge.data.vqa.build import write_fixture

    for name, repo_id, split in (
        ("medvlthinker_eval", "UCSC-VLAA/MedVLThinker-Eval", "test"),
        ("pmc_vqa_train", "UCSC-VLAA/MedVLThinker-pmc_vqa", "train"),
    ):
        assert get_adapter(name).hub["id"] == repo_id
        raw = write_fixture(cfg, name, root / "fixtures" / name)
        make_hub_dataset_cache(root / "hub-cache", repo_id, {split: load_from_disk(str(raw / "default"))[split]})
    return root / "hub-cache"


@pytest.fixture()
def hub_cfg(tiny_cfg, tiny_model_dir, tmp_path) -> Path:
    cfg = copy.deepcopy(tiny_cfg)
    cfg["hub_cache"] = str(make_hub_cache(tmp_path / "hub-cache", tiny_model_dir))
    cfg["models"] = {"base": {"source": "hub", "id": REPO, "revision": "main", "dtype": "float32"}}
    cfg["evaluate"].update(models=["base"], n_samples=2, k=[1, 2])
    path = tmp_path / "config.json"
    path.write_text(json.dumps(consistent(cfg)))
    return path


def clean_env(tmp_path: Path) -> dict:
    """No hub settings of the caller: no HF_HUB_OFFLINE, and a default cache that is empty."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return env | {"HF_HOME": str(tmp_path / "empty-hf-home"), "PYTHONPATH": str(ROOT / "src")}


def medbridge(args, tmp_path, **kw):
    return subprocess.run(
        [sys.executable, "-m", "medbridge.cli", *args],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
        **kw,
    )


def test_download_step_records_the_pinned_snapshot(hub_cfg, tmp_path):
    out = tmp_path / "hub" / "base.json"
    env = clean_env(tmp_path) | {"HF_HUB_OFFLINE": "1"}  # no network here: the hub answers from the cache
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "medbridge.cli",
            "download-model",
            "--config",
            str(hub_cfg),
            "--model",
            "base",
            "--out",
            str(out),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(out.read_text())
    (repo,) = record["repos"]
    assert repo["id"] == REPO and repo["commit"] == COMMIT and "model.safetensors" in repo["files"]
    assert Path(repo["path"]).is_relative_to(json.loads(hub_cfg.read_text())["hub_cache"])
    bad = medbridge(["download-model", "--config", str(hub_cfg), "--model", "judge", "--out", str(out)], tmp_path)
    assert bad.returncode == 2 and "not a hub model" in bad.stderr


def test_gpu_jobs_load_the_model_from_the_cache_offline(hub_cfg, synthetic_dir, tmp_path):
    """`features` (a GPU rule's verb) with no network settings of its own: the config's hub cache, offline, is
    where the model comes from; its provenance names the cached commit."""
    out = tmp_path / "features" / "breastmnist.npz"
    npz = synthetic_dir / npz_name("breastmnist", 64)
    proc = medbridge(
        [
            "features",
            "--config",
            str(hub_cfg),
            "--model",
            "base",
            "--datasets",
            "breastmnist",
            "--npz",
            str(npz),
            "--out",
            str(out),
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    side = json.loads(Path(f"{out}.provenance.json").read_text())
    (model,) = side["models"]
    assert model["path"] == REPO and model["snapshot"] == COMMIT and model["weights_sha256"]
    assert not (tmp_path / "empty-hf-home").exists()  # nothing went to the default cache


def test_gpu_verbs_are_offline_and_downloads_are_not(tiny_cfg, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from medbridge.hub import use_cache

    for key in ("HF_HUB_OFFLINE", "HF_HUB_CACHE"):
        monkeypatch.delenv(key, raising=False)
        monkeypatch.setattr(constants, key, getattr(constants, key))  # restored after the test
    use_cache(tiny_cfg, "generate")  # no hub_cache configured: nothing changes
    assert "HF_HUB_CACHE" not in os.environ and "HF_HUB_OFFLINE" not in os.environ
    cfg = {**tiny_cfg, "hub_cache": str(tmp_path / "cache")}
    use_cache(cfg, "download-model")
    assert os.environ["HF_HUB_CACHE"] == str(tmp_path / "cache") and "HF_HUB_OFFLINE" not in os.environ
    for verb in ("generate", "score", "features", "sft", "grpo", "pmc-label", "vqa-items", "pmc-balance"):
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        use_cache(cfg, verb)
        assert os.environ["HF_HUB_OFFLINE"] == "1" and constants.HF_HUB_OFFLINE, verb
    assert constants.HF_HUB_CACHE == str(tmp_path / "cache")  # libraries already imported see it too


def test_a_jobs_caches_are_node_local_and_only_the_hub_cache_is_shared(hub_cfg, tmp_path):
    """In a SLURM job (or a container), every library cache that would land in the home folder (the checkout under
    `apptainer --home`) points at the job's own folder under $TMPDIR; a variable the user set stays; the libraries
    read them; the folder goes when the job ends."""
    from medbridge.scratch import CACHE_VARS, use_job_scratch

    node = tmp_path / "node-local"
    node.mkdir()
    env = {"SLURM_JOB_ID": "4242", "TMPDIR": str(node), "TRITON_CACHE_DIR": str(tmp_path / "mine")}
    root = use_job_scratch(env)
    assert root == node / "medbridge-job-4242"
    made = [v for v in CACHE_VARS if v != "TRITON_CACHE_DIR"]
    assert all(Path(env[v]).is_dir() and Path(env[v]).is_relative_to(root) for v in made)
    assert env["TRITON_CACHE_DIR"] == str(tmp_path / "mine")
    assert use_job_scratch({"TMPDIR": str(node)}) is None  # not a job: nothing changes
    gone = {"SLURM_JOB_ID": "7", "TMPDIR": str(tmp_path / "not-bound-in-the-container")}
    assert use_job_scratch(gone) == Path("/tmp/medbridge-job-7")
    shutil.rmtree("/tmp/medbridge-job-7")

    # a real verb in a job: the libraries see the node-local caches, the hub cache is the shared one; cleaned up
    probe = (
        "import json, os; from medbridge.scratch import use_job_scratch; use_job_scratch(); "  # as cli.main
        "from medbridge.config import load_config; from medbridge.hub import use_cache; "
        f"use_cache(load_config({str(hub_cfg)!r}), 'generate'); import datasets.config as d; "
        "from torch._inductor.runtime.cache_dir_utils import cache_dir; "
        "print(json.dumps({'datasets': str(d.HF_DATASETS_CACHE), 'inductor': cache_dir(), "
        "'hub': os.environ['HF_HUB_CACHE'], 'vllm': os.environ['VLLM_CACHE_ROOT']}))"
    )
    job = {k: v for k, v in clean_env(tmp_path).items() if k not in CACHE_VARS}  # (torch here set its own)
    job |= {"SLURM_JOB_ID": "4243", "TMPDIR": str(node)}
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=job, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    job_root = node / "medbridge-job-4243"
    for k in ("datasets", "inductor", "vllm"):
        assert Path(seen[k]).is_relative_to(job_root), (k, seen[k], job_root)
    assert seen["hub"] == json.loads(hub_cfg.read_text())["hub_cache"]
    assert not job_root.exists()  # removed at exit by the process that made it


def test_a_job_reads_hub_datasets_from_the_cache_offline_or_says_how_to_fetch_them(tiny_cfg, tmp_path):
    """`vqa-items` (a cluster job) with the config's hub cache: offline by itself; a dataset the cache lacks is an
    error naming the download step, not a silent network fetch (or a hang) on a compute node."""
    cfg = copy.deepcopy(tiny_cfg)
    cfg["vqa"]["source"] = "medvlthinker"
    cfg["hub_cache"] = str(fixture_dataset_cache(tmp_path, cfg))
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    out = tmp_path / "vqa" / "slake" / "items.jsonl"
    proc = medbridge(["vqa-items", "--config", str(path), "--benchmark", "slake", "--out", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out.parent / "skipped.json").read_text())["source"].startswith(
        f"hub:UCSC-VLAA/MedVLThinker-Eval@{COMMIT}"
    )
    shutil.rmtree(Path(cfg["hub_cache"]) / "datasets--UCSC-VLAA--MedVLThinker-Eval")
    proc = medbridge(["vqa-items", "--config", str(path), "--benchmark", "slake", "--out", str(out)], tmp_path)
    assert proc.returncode == 2 and "not in the hub cache" in proc.stderr and "download_dataset" in proc.stderr


def make_subfolder_cache(root: Path, model_dir: Path, folders: list[str]) -> Path:
    """A hub repo that keeps one checkpoint per sub-folder (as Med-R1), in the layout huggingface_hub writes."""
    repo = root / ("models--" + REPO.replace("/", "--"))
    snap = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for i, folder in enumerate(folders):
        (snap / folder).mkdir(parents=True)
        for f in sorted(p for p in model_dir.iterdir() if p.is_file()):
            data = f.read_bytes() + (b" " * i if f.suffix == ".json" else b"")  # folders differ (configs)
            blob = repo / "blobs" / f"{folder}-{f.name}"
            blob.write_bytes(data)
            (snap / folder / f.name).symlink_to(Path("../../../blobs") / blob.name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return root


def test_a_role_names_a_subfolder_downloaded_fingerprinted_and_loaded(tiny_cfg, tiny_model_dir, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from medbridge import MedbridgeError
    from medbridge.fingerprint import model_fingerprint
    from medbridge.hub import download
    from medbridge.models.registry import load, resolve

    cache = make_subfolder_cache(tmp_path / "hub-cache", tiny_model_dir, ["VQA_CT", "VQA_DD"])
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    cfg = copy.deepcopy(tiny_cfg) | {"hub_cache": str(cache)}
    cfg["models"] = {r: {"source": "hub", "id": REPO, "subfolder": r, "dtype": "float32"} for r in ("VQA_CT", "VQA_DD")}
    record = download(cfg, "VQA_DD")
    assert record["repos"][0]["subfolder"] == "VQA_DD" and record["repos"][0]["commit"] == COMMIT
    src = resolve(cfg, "VQA_DD")
    assert (
        src.local and Path(src.path) == cache / f"models--{REPO.replace('/', '--')}" / "snapshots" / COMMIT / "VQA_DD"
    )
    assert src.processor_path == src.path  # its own processor, from the same folder
    # fingerprinted as the folder it is: the two checkpoints of one repo never share a cache key
    assert model_fingerprint(src)["files_sha256"] != model_fingerprint(resolve(cfg, "VQA_CT"))["files_sha256"]
    model, processor, _ = load(cfg, "VQA_DD")
    assert model.config.model_type == "qwen2_5_vl" and processor.tokenizer is not None
    cfg["models"]["VQA_XX"] = {"source": "hub", "id": REPO, "subfolder": "VQA_XX"}
    with pytest.raises(MedbridgeError, match="no \\*.safetensors weights in sub-folder 'VQA_XX'"):
        download(cfg, "VQA_XX")
    with pytest.raises(MedbridgeError, match="not downloaded"):
        load({**cfg, "models": {"m": {"source": "hub", "id": "nobody/none", "subfolder": "x"}}}, "m")
