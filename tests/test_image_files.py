"""The files containers/Dockerfile and .dockerignore put into the image are enough for the image's own checks.

Without podman, in seconds: the build context is filtered by .dockerignore (Docker's rules), the Dockerfile's COPY
lines are applied to a temporary /opt/medbridge, and the checks of its last RUN (`medbridge --version`,
`medbridge env --check --lock <lock>`) run there, on this venv's packages. A change to the locks, the Dockerfile or
.dockerignore that would break the image build (as the lock added without the image copying it once did) fails here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

CPU_LOCK = "envs/requirements-cpu.txt"


def _pattern_regex(pattern: str) -> re.Pattern:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regex over slash-separated relative paths."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def context_files(root: Path) -> list[str]:
    """The build context's files after .dockerignore: the last pattern that matches a path or one of its parent
    folders decides (a `!` pattern re-includes), as moby's patternmatcher does."""
    rules = []
    for line in (root / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        rules.append((negate, _pattern_regex(line.lstrip("!").strip("/"))))
    kept = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and ".git" not in p.relative_to(root).parts):
        rel = path.relative_to(root).as_posix()
        parts = rel.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        excluded = False
        for negate, rx in rules:
            if any(rx.match(p) for p in prefixes):
                excluded = not negate
        if not excluded:
            kept.append(rel)
    return kept


def dockerfile_copies(root: Path, build_args: dict[str, str]) -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY from the build context (not `--from=`) in the final stage, with ARGs
    substituted and destinations made absolute against the WORKDIR in force."""
    text = (root / "containers" / "Dockerfile").read_text().replace("\\\n", " ")
    args, workdir, copies = {}, "/", []
    for line in text.splitlines():
        words = shlex.split(line, comments=True) if line.strip() else []
        if not words:
            continue
        op = words[0].upper()
        if op == "FROM":
            args, workdir, copies = {}, "/", []  # only the last stage is the image
        elif op == "ARG":
            name, _, default = words[1].partition("=")
            args[name] = build_args.get(name, default)
        elif op == "WORKDIR":
            workdir = str(Path(workdir, _subst(words[1], args)))
        elif op == "COPY" and not any(w.startswith("--from") for w in words):
            *srcs, dest = [_subst(w, args) for w in words[1:] if not w.startswith("--")]
            copies.append((srcs, str(Path(workdir, dest)) + ("/" if dest.endswith("/") else "")))
    return copies


def _subst(word: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), ""), word)


def image_tree(root: Path, dest_root: Path, build_args: dict[str, str]) -> Path:
    """Copy what the image's COPY lines take from the filtered context into dest_root; returns /opt/medbridge there."""
    context = context_files(root)
    for srcs, dest in dockerfile_copies(root, build_args):
        for src in srcs:
            under = [f for f in context if f == src or f.startswith(src.rstrip("/") + "/")]
            assert under, f"COPY {src}: nothing in the build context (.dockerignore excludes it or it does not exist)"
            for f in under:
                if f == src:  # a file: into a folder (dest/) or as the named file
                    target = Path(dest, Path(f).name) if dest.endswith("/") else Path(dest)
                else:  # a folder: its contents into dest
                    target = Path(dest, Path(f).relative_to(src))
                out = dest_root / target.relative_to("/")
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(root / f, out)
    return dest_root / "opt" / "medbridge"


def run_image_checks(tree: Path, lock: str) -> subprocess.CompletedProcess:
    """The Dockerfile's last RUN's checks, importing medbridge from `tree` (the image's editable install)."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "MEDBRIDGE_IMAGE_LOCK": str(tree / lock)}
    code = (
        "import medbridge.environment as e, sys; assert e.PROJECT_ROOT == __import__('pathlib').Path(sys.argv[1]),"
        " e.PROJECT_ROOT; from medbridge.cli import main; sys.exit(main(sys.argv[2:]))"
    )
    version = subprocess.run(
        [sys.executable, "-c", code, str(tree), "--version"],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert version.returncode == 0, version.stderr
    return subprocess.run(
        [sys.executable, "-c", code, str(tree), "env", "--check", "--lock", lock],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _bootstrapped_from_cpu_lock() -> bool:
    import hashlib

    stamp = hashlib.sha256((ROOT / CPU_LOCK).read_bytes() + (ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    return (Path(sys.prefix) / f".medbridge-installed-{stamp}").exists()


def test_dockerignore_rules_as_docker_reads_them(tmp_path):
    for f in ("src/pkg/a.py", "src/pkg/__pycache__/a.pyc", "results/x.csv", "envs/lock.txt", "README.md"):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("x")
    (tmp_path / ".dockerignore").write_text("*\n!envs/\n!src/\n**/__pycache__\n")
    assert context_files(tmp_path) == ["envs/lock.txt", "src/pkg/a.py"]


def test_the_images_files_pass_its_own_checks(tmp_path):
    """The CPU variant (the build args of tests/test_container.py) gets exactly what it needs for `env --check`."""
    if not _bootstrapped_from_cpu_lock():
        pytest.skip("not a venv made by scripts/bootstrap.sh from the CPU lock (make test makes one)")
    tree = image_tree(ROOT, tmp_path, {"LOCK": CPU_LOCK})
    proc = run_image_checks(tree, CPU_LOCK)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    assert sorted(p.name for p in (tree / "envs").iterdir()) == ["requirements-cpu.txt"]
    assert "envs/requirements-gpu.txt not carried by this image" in proc.stdout


@pytest.mark.parametrize("lock", ["envs/requirements-gpu.txt", CPU_LOCK])
def test_each_images_lock_agrees_with_the_pyproject_it_carries(tmp_path, lock):
    """The GPU image's lock checks (the packages are the GPU node's, so only the lock side runs here)."""
    tree = image_tree(ROOT, tmp_path, {"LOCK": lock})
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "MEDBRIDGE_IMAGE_LOCK": str(tree / lock)}
    code = (
        "import json, medbridge.environment as e; "
        "print(json.dumps(e.lock_problems())); print(json.dumps(e.locks_not_carried()))"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    problems, not_carried = proc.stdout.splitlines()
    assert proc.returncode == 0 and json.loads(problems) == [], proc.stdout + proc.stderr
    assert lock not in json.loads(not_carried) and len(json.loads(not_carried)) == 2


def test_an_image_missing_its_own_lock_fails_its_check(tmp_path):
    """The check is not vacuous: without the lock it was built from, the image's check names the file."""
    tree = image_tree(ROOT, tmp_path, {"LOCK": CPU_LOCK})
    (tree / CPU_LOCK).unlink()
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "MEDBRIDGE_IMAGE_LOCK": str(tree / CPU_LOCK)}
    code = "import medbridge.environment as e; print(e.lock_problems())"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert "envs/requirements-cpu.txt is missing" in proc.stdout, proc.stdout + proc.stderr
