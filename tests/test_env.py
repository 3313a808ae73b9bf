"""The exact environment: the lock files agree with pyproject.toml, the image references are exact, the driver check
and the image digest in provenance, and `medbridge env`. Fast (no install, no network); the container build itself is
tests/test_container.py (opt-in)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medbridge import MedbridgeError
from medbridge import environment as env

from .conftest import ROOT

BIN = Path(sys.executable).parent
DIGEST = "sha256:" + "0123456789abcdef" * 4


# ---- pyproject.toml <-> the locks ------------------------------------------------------------------------------------


def test_locks_agree_with_pyproject():
    assert env.lock_problems() == [], "\n".join(env.lock_problems())


def _copy_project(tmp_path: Path) -> Path:
    (tmp_path / "envs").mkdir()
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    for rel, _ in env.LOCKS.values():
        shutil.copy(ROOT / rel, tmp_path / rel)
    return tmp_path


def test_lock_check_fails_when_pyproject_changes(tmp_path):
    root = _copy_project(tmp_path)
    assert env.lock_problems(root) == []
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"transformers>=5.16.1,<5.21"', '"transformers>=5.21"'))
    problems = env.lock_problems(root)
    assert any("made from another pyproject.toml" in p and "scripts/lock.sh" in p for p in problems), problems
    assert any("transformers==" in p and "does not satisfy" in p for p in problems), problems
    # a new dependency that no lock pins
    pyproject.write_text(pyproject.read_text().replace('"pyyaml>=6",', '"pyyaml>=6",\n    "rich-click>=1",'))
    assert any("rich-click" in p and "not pinned" in p for p in env.lock_problems(root))


def test_lock_check_fails_when_a_lock_is_edited_by_hand(tmp_path):
    root = _copy_project(tmp_path)
    lock = root / "envs" / "requirements-gpu.txt"
    lock.write_text(re.sub(r"^vllm==\S+", "vllm==0.32.0", lock.read_text(), flags=re.M))
    assert any("vllm==0.32.0 does not satisfy" in p for p in env.lock_problems(root))
    lock.unlink()
    assert any("requirements-gpu.txt is missing" in p for p in env.lock_problems(root))


@pytest.mark.parametrize("name", sorted(env.LOCKS))
def test_locks_are_hashed_closures_for_python_311(name):
    rel, extra = env.LOCKS[name]
    text = (ROOT / rel).read_text()
    assert f"extra '{extra}'" in text.splitlines()[0] and "Python 3.11" in text.splitlines()[0]
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 3)[3])
    assert len(blocks) > 100
    for block in blocks:  # every distribution exactly pinned, with at least one sha256
        assert re.match(r"^[A-Za-z0-9][\w.-]*(\[[^\]]*\])?==\S+", block) and "--hash=sha256:" in block, block[:200]
    _, pins = env.read_lock(ROOT / rel)
    assert "setuptools" in pins  # the build backend: the project installs with --no-build-isolation


def test_torch_stack_per_lock():
    """CPU: torch 2.14.1 (the wheels this project's machines carry); GPU: what vLLM 0.33 pins. Outside the torch stack
    the two locks agree, so the tests exercise the cluster's library versions."""
    _, cpu = env.read_lock(ROOT / "envs" / "requirements-cpu.txt")
    _, gpu = env.read_lock(ROOT / "envs" / "requirements-gpu.txt")
    assert (cpu["torch"], cpu["torchvision"]) == ("2.14.1", "0.29.1")
    assert (gpu["torch"], gpu["torchvision"]) == ("2.14.0", "0.29.0") and gpu["vllm"].startswith("0.33.")
    stack = re.compile(r"^(torch|torchvision|torchaudio|triton|nvidia-.*|cuda-.*)$")
    differ = {k: (cpu[k], gpu[k]) for k in cpu if k in gpu and cpu[k] != gpu[k] and not stack.match(k)}
    assert differ == {}
    # CUDA 13.0 runtime in the GPU lock: the base image and the driver check say the same
    assert gpu["nvidia-cuda-runtime"].startswith("13.0.")


def test_installers_use_the_locks():
    boot = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert "--require-hashes --no-deps -r" in boot and "envs/requirements-cpu.txt" in boot
    assert re.search(r'stamp=.*cat "\$lock" pyproject.toml \| sha256sum', boot)  # reinstall when the lock changes
    post = (ROOT / "envs" / "medbridge.post-deploy.sh").read_text()
    assert "--require-hashes --no-deps -r" in post and "envs/requirements-gpu.txt" in post
    assert os.access(ROOT / "envs" / "medbridge.post-deploy.sh", os.X_OK)
    assert os.access(ROOT / "scripts" / "lock.sh", os.X_OK)


# ---- image references -----------------------------------------------------------------------------------------------


def test_dockerfile_bases_are_pinned_by_digest_and_python_by_patch():
    text = (ROOT / "containers" / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S*)", text, re.M))
    for key in ("BASE_IMAGE", "UV_IMAGE"):
        assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", args[key]), (key, args.get(key))
    assert args["BASE_IMAGE"].startswith("nvidia/cuda:13.0.") and args["CUDA"] == "13.0"
    assert re.fullmatch(r"3\.11\.\d+", args["PYTHON_VERSION"])
    assert args["LOCK"] == "envs/requirements-gpu.txt"
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert froms == ["${UV_IMAGE}", "${BASE_IMAGE}"]  # nothing pulled by tag
    assert 'uv pip install --require-hashes --no-deps -r "${LOCK}"' in text
    assert re.search(r"apt-get install .*\bgcc\b.*\blibc6-dev\b", text)  # Triton's launcher needs a C compiler
    assert "medbridge env --check" in text


def test_paper_image_is_a_digest_template():
    import yaml

    image = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())["container_image"]
    assert re.fullmatch(r"docker://\S+@sha256:\S+", image)
    with pytest.raises(MedbridgeError, match="template.*skopeo inspect"):
        env.check_image_reference(image)


def test_image_reference_must_be_exact(tmp_path):
    env.check_image_reference(f"docker://ghcr.io/me/medbridge@{DIGEST}")
    with pytest.raises(MedbridgeError, match="names a tag"):
        env.check_image_reference("docker://ghcr.io/me/medbridge:0.1.0")
    with pytest.raises(MedbridgeError, match="no such file"):
        env.check_image_reference("containers/absent.sif", tmp_path)
    (tmp_path / "m.sif").write_bytes(b"SIF")
    env.check_image_reference("m.sif", tmp_path)


# ---- the driver check at job start ----------------------------------------------------------------------------------


def test_old_driver_is_refused_with_the_fix():
    with pytest.raises(MedbridgeError, match=r"CUDA 13.0.*driver >= 580.*supports CUDA 12.8"):
        env.check_cuda_driver("13.0", driver=12080)
    env.check_cuda_driver("13.0", driver=13000)  # new enough
    env.check_cuda_driver("13.0", driver=None)  # no GPU: a CPU job
    env.check_cuda_driver("", driver=12080)  # not in the image (or its CPU variant)


def test_cli_checks_the_driver_before_a_verb(monkeypatch, capsys):
    from medbridge import cli

    monkeypatch.setenv("MEDBRIDGE_IMAGE_CUDA", "13.0")
    monkeypatch.setattr(env, "cuda_driver_version", lambda: 12020)
    assert cli.main(["validate-config", "--config", str(ROOT / "config" / "config.yaml")]) == 2
    assert "driver >= 580" in capsys.readouterr().err


# ---- the container in provenance ------------------------------------------------------------------------------------


def _no_container(monkeypatch):
    for k in ("APPTAINER_CONTAINER", "SINGULARITY_CONTAINER", "MEDBRIDGE_IMAGE_DIGEST", *env.IMAGE_ENV):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.delenv("container", raising=False)
    monkeypatch.setattr(env, "_docker", lambda: False)
    monkeypatch.setattr(env, "_containerenv", lambda: None)


def test_container_info(monkeypatch, tmp_path):
    _no_container(monkeypatch)
    assert env.container_info("docker://x@" + DIGEST) is None  # not in a container: nothing to record
    sif = tmp_path / "medbridge.sif"
    sif.write_bytes(b"x" * 10)
    lock = tmp_path / "requirements-gpu.txt"
    lock.write_text("torch==2.14.0\n")
    monkeypatch.setenv("APPTAINER_CONTAINER", str(sif))
    monkeypatch.setenv("MEDBRIDGE_IMAGE_BASE", "nvidia/cuda:13.0.3-base-ubuntu24.04@" + DIGEST)
    monkeypatch.setenv("MEDBRIDGE_IMAGE_LOCK", str(lock))
    info = env.container_info(f"docker://ghcr.io/me/medbridge@{DIGEST}")
    assert info["runtime"] == "apptainer" and info["digest"] == DIGEST and info["sif_size"] == 10
    assert info["built"]["MEDBRIDGE_IMAGE_BASE"].endswith(DIGEST)
    assert info["lock_sha256"] == env.hashlib.sha256(b"torch==2.14.0\n").hexdigest()
    assert env.container_info("containers/medbridge.sif")["digest"] is None  # a .sif has no digest of its own
    monkeypatch.setenv("MEDBRIDGE_IMAGE_DIGEST", "sha256:" + "f" * 64)  # set by whoever starts the job
    assert env.container_info("containers/medbridge.sif")["digest"] == "sha256:" + "f" * 64
    monkeypatch.delenv("APPTAINER_CONTAINER")
    monkeypatch.delenv("MEDBRIDGE_IMAGE_DIGEST")
    monkeypatch.setattr(env, "_docker", lambda: True)  # e.g. a dev container: the config's image is not this one
    info = env.container_info(f"docker://ghcr.io/me/medbridge@{DIGEST}")
    assert info["runtime"] == "docker" and info["digest"] is None and info["configured"] is None
    monkeypatch.setattr(env, "_containerenv", lambda: {"image": f"localhost/medbridge@{DIGEST}", "imageid": "abc"})
    info = env.container_info(None)
    assert info["runtime"] == "podman" and info["digest"] == DIGEST and info["image_id"] == "abc"
    monkeypatch.setattr(env, "_containerenv", lambda: {})  # podman's usual empty file: no image, no digest
    assert env.container_info(None)["runtime"] == "podman" and env.container_info(None)["digest"] is None


def test_sidecar_records_the_image_and_every_package(monkeypatch, tmp_path, tiny_cfg):
    from medbridge import provenance

    _no_container(monkeypatch)
    monkeypatch.setenv("APPTAINER_CONTAINER", "/images/medbridge.sif")
    out = tmp_path / "x.json"
    out.write_text("{}")
    cfg = {**tiny_cfg, "container_image": f"docker://ghcr.io/me/medbridge@{DIGEST}"}
    record = json.loads(provenance.write_sidecar(out, cfg, []).read_text())
    assert record["container"]["digest"] == DIGEST and record["container"]["sif"] == "/images/medbridge.sif"
    packages = record["environment"]["packages"]
    assert packages == env.installed() and "numpy" in packages
    assert record["environment"]["packages_sha256"] == env.packages_sha256(packages)


# ---- medbridge env ---------------------------------------------------------------------------------------------------


def _medbridge(capsys, *args) -> tuple[int, str, str]:
    """One `medbridge` call in this process (torch is imported once per session, not once per call)."""
    from medbridge import cli

    rc = cli.main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_env_reports_compares_and_checks(tmp_path, capsys):
    mine = tmp_path / "mine.json"
    rc, out, err = _medbridge(capsys, "env", "--json", str(mine), "--lock", "cpu")
    assert rc == 0, err
    rec = json.loads(mine.read_text())
    assert rec["python"] == sys.version.split()[0] and rec["packages"]["numpy"]
    assert f"numpy=={rec['packages']['numpy']}" in out.splitlines()
    # the same environment compares identical; a changed version and a missing package are named
    rc, out, _ = _medbridge(capsys, "env", "--compare", str(mine))
    assert "identical" in out, out[-2000:]
    theirs = {**rec, "packages": {**rec["packages"], "numpy": "1.0.0"}}
    del theirs["packages"]["pyyaml"]
    (tmp_path / "theirs.json").write_text(json.dumps(theirs))
    rc, out, _ = _medbridge(capsys, "env", "--compare", str(tmp_path / "theirs.json"))
    assert f"numpy: {rec['packages']['numpy']} != 1.0.0" in out
    assert f"pyyaml: {rec['packages']['pyyaml']} != (absent)" in out
    # --check against a lock that pins another numpy fails naming it
    lock = tmp_path / "lock.txt"
    lock.write_text("# medbridge lock\nnumpy==1.0.0 \\\n    --hash=sha256:00\n")
    rc, _, err = _medbridge(capsys, "env", "--check", "--lock", str(lock))
    assert rc == 2 and f"numpy: installed {rec['packages']['numpy']}, locked 1.0.0" in err


def test_env_compares_with_a_runs_sidecar(tmp_path, capsys, tiny_cfg):
    from medbridge import provenance

    out = tmp_path / "x.json"
    out.write_text("{}")
    side = json.loads(provenance.write_sidecar(out, tiny_cfg, []).read_text())
    side["environment"]["packages"]["numpy"] = "1.0.0"
    (tmp_path / "side.json").write_text(json.dumps(side))
    _, stdout, _ = _medbridge(capsys, "env", "--compare", str(tmp_path / "side.json"))
    assert "1 differences" in stdout and "numpy: " in stdout and "!= 1.0.0" in stdout


def test_a_bootstrapped_venv_is_exactly_the_lock():
    """The venv `make test` runs in (made by scripts/bootstrap.sh, which leaves its stamp) equals the CPU lock."""
    import hashlib

    lock = ROOT / "envs" / "requirements-cpu.txt"
    stamp = hashlib.sha256(lock.read_bytes() + (ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    if not (Path(sys.prefix) / f".medbridge-installed-{stamp}").exists():  # the name bootstrap.sh gives its stamp
        pytest.skip("not a venv made by scripts/bootstrap.sh from the current lock (make test makes one)")
    proc = subprocess.run(
        [sys.executable, "-m", "medbridge.cli", "env", "--check", "--lock", "cpu"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
