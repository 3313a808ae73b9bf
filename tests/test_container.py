"""Opt-in (`make test-container`, root, podman + buildah + debootstrap, network to Debian and PyPI, ~6 GB of disk,
minutes): build the CPU variant of containers/Dockerfile, the same file as the GPU image with other build args, and
run `medbridge --version`, `medbridge env --check` and one rule of the tiny DAG inside it.

Only Debian and PyPI are reachable here, so the two bases come from them: a Debian bookworm rootfs made by debootstrap
(its python3.11 is the interpreter, PYTHON_VERSION=3.11.2) and the uv binary from uv's PyPI wheel (hash-checked), both
`podman import`ed. The lock (envs/requirements-cpu.txt) is installed from PyPI with its hashes, as on a fresh machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import urllib.request
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT

pytestmark = [
    pytest.mark.container,
    pytest.mark.skipif(
        os.environ.get("MEDBRIDGE_TEST_CONTAINER") != "1",
        reason="opt-in: make test-container (root, podman, buildah, debootstrap; minutes)",
    ),
]
WORK = Path(os.environ.get("MEDBRIDGE_CONTAINER_WORK", "/var/tmp/medbridge-container"))
BASE = "localhost/medbridge-cpu-base:bookworm"
UV = "localhost/uv:0.13.0"
IMAGE = "localhost/medbridge:cpu-test"
UV_WHEEL = (
    "https://files.pythonhosted.org/packages/19/5a/"
    "b57c401bf3032a382b745396a6fbb5a09f77b9f31e7d6217c7e320cf3148/uv-0.13.0-py3-none-musllinux_1_1_x86_64.whl",
    "5cb956988442f5b1ca281344818a6b9fa296a799d7024cc53ae571d464150ca2",
)
# This machine's cgroups break crun; runc with explicit limits works (buildah: chroot isolation).
RUN = ["podman", "--runtime", "runc", "run", "--rm", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"]


def sh(args, timeout=3600, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _exists(image: str) -> bool:
    return subprocess.run(["podman", "image", "exists", image]).returncode == 0


def trust_this_machines_cas(rootfs: Path) -> None:
    """Where PyPI is reached through a TLS-intercepting proxy, the base trusts what this machine trusts: its extra CA
    certificates (public, /usr/local/share/ca-certificates) join the bundle when the Dockerfile installs
    ca-certificates, and uv reads that bundle (system-certs) instead of its built-in roots. The GPU image is built
    from the real bases, without either."""
    extra = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    if not extra:
        return
    dest = rootfs / "usr/local/share/ca-certificates"
    dest.mkdir(parents=True, exist_ok=True)
    for crt in extra:
        shutil.copy(crt, dest / crt.name)
    (rootfs / "etc/uv").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/uv/uv.toml").write_text("system-certs = true\n")


@pytest.fixture(scope="module")
def bases() -> str:
    """Import the two bases once (kept across runs under WORK); returns the base's Python version."""
    missing = [t for t in ("podman", "buildah", "debootstrap") if not shutil.which(t)]
    if missing or os.geteuid() != 0:
        pytest.skip(f"needs root and {missing or 'podman, buildah, debootstrap'}")
    WORK.mkdir(parents=True, exist_ok=True)
    if not _exists(BASE):
        rootfs = WORK / "rootfs"
        shutil.rmtree(rootfs, ignore_errors=True)
        sh(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3.11,python3.11-dev",
                "bookworm",
                str(rootfs),
                "http://deb.debian.org/debian",
            ]
        )
        trust_this_machines_cas(rootfs)
        sh(["tar", "-C", str(rootfs), "-cf", str(WORK / "rootfs.tar"), "."])
        sh(["podman", "import", str(WORK / "rootfs.tar"), BASE])
        shutil.rmtree(rootfs)
        (WORK / "rootfs.tar").unlink()
    if not _exists(UV):
        data = urllib.request.urlopen(UV_WHEEL[0], timeout=300).read()
        assert hashlib.sha256(data).hexdigest() == UV_WHEEL[1], "uv wheel hash mismatch"
        (WORK / "uv.whl").write_bytes(data)
        with zipfile.ZipFile(WORK / "uv.whl") as z:
            binary = next(n for n in z.namelist() if n.endswith(".data/scripts/uv"))
            (WORK / "uv").write_bytes(z.read(binary))
        (WORK / "uv").chmod(0o755)
        with tarfile.open(WORK / "uv.tar", "w") as tar:
            tar.add(WORK / "uv", arcname="uv")
        sh(["podman", "import", str(WORK / "uv.tar"), UV])
    return sh(RUN + [BASE, "python3.11", "-c", "import platform; print(platform.python_version())"]).stdout.strip()


@pytest.fixture(scope="module")
def image(bases) -> str:
    """buildah bud of containers/Dockerfile with the CPU build args (minutes: the lock comes from PyPI)."""
    sh(
        [
            "buildah",
            "bud",
            "--isolation",
            "chroot",
            "--ulimit",
            "nofile=20000:20000",
            "--layers",
            "--format",
            "docker",
            "-f",
            "containers/Dockerfile",
            "--build-arg",
            f"BASE_IMAGE={BASE}",
            "--build-arg",
            f"UV_IMAGE={UV}",
            "--build-arg",
            "LOCK=envs/requirements-cpu.txt",
            "--build-arg",
            f"PYTHON_VERSION={bases}",
            "--build-arg",
            "CUDA=",
            "-t",
            IMAGE,
            ".",
        ],
        cwd=ROOT,
    )
    return IMAGE


def test_version_and_exact_environment(image):
    assert sh(RUN + [image, "medbridge", "--version"]).stdout.strip() == "medbridge 0.1.0"
    proc = sh(RUN + [image, "medbridge", "env", "--check", "--lock", "cpu", "--json", "-"])
    rec = json.loads(proc.stdout)
    assert rec["lock"]["different"] == {} and rec["lock"]["missing"] == []
    assert (
        rec["container"]["runtime"] == "podman"
        and rec["container"]["lock_sha256"]
        == hashlib.sha256((ROOT / "envs" / "requirements-cpu.txt").read_bytes()).hexdigest()
    )
    assert sh(RUN + [image, "gcc", "--version"]).stdout.startswith("gcc")  # Triton's launcher compiler


def test_one_tiny_rule_runs_inside(image, tmp_path):
    """`snakemake` in the image builds the tiny model (rule build_tiny) from a copy of the workflow; a sidecar written
    there records the container (podman's image id) and the image's torch."""
    for name in ("Snakefile", "rules", "config", "envs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    target = "results/tiny/models/base"
    sh(RUN + ["-v", f"{tmp_path}:/work", "-w", "/work", image, "snakemake", "--cores", "1", target])
    model = tmp_path / target
    assert (model / "config.json").exists() and list(model.glob("*.safetensors"))
    # podman does not tell a container its image's digest: whoever starts the job passes it (apptainer passes the
    # host's environment on; a `docker://...@sha256:` config reference is read from the config instead)
    digest = sh(["podman", "image", "inspect", "--format", "{{.Digest}}", image]).stdout.strip()
    code = (
        "from medbridge.provenance import write_sidecar; "
        "write_sidecar('results/tiny/models/base/config.json', {'seed': 0}, [])"
    )
    sh(
        RUN
        + [
            "-v",
            f"{tmp_path}:/work",
            "-w",
            "/work",
            "-e",
            f"MEDBRIDGE_IMAGE_DIGEST={digest}",
            image,
            "python",
            "-c",
            code,
        ]
    )
    side = json.loads((model / "config.json.provenance.json").read_text())
    assert digest.startswith("sha256:") and side["container"]["digest"] == digest
    assert side["container"]["runtime"] == "podman"
    assert side["container"]["built"]["MEDBRIDGE_IMAGE_BASE"] == BASE
    assert side["environment"]["packages"]["torch"] == "2.14.1"
