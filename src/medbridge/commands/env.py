"""`medbridge env`: the exact environment this process runs in (Python, platform, every distribution, torch's CUDA,
the container image and its digest), beside the lock it should match. Two users compare environments with
`medbridge env --json mine.json` on one side and `medbridge env --compare mine.json` on the other; `--compare` also
takes any `<output>.provenance.json`, so a run's recorded environment is diffed against the current one."""

import json
import os
import sys
from pathlib import Path


def add_arguments(p) -> None:
    p.add_argument("--lock", help="compare to this lock: cpu, gpu or a path (default: whichever is closer)")
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 2 unless the installed distributions equal the lock and the locks match pyproject.toml",
    )
    p.add_argument("--json", dest="json_out", metavar="PATH", help="write the report as JSON ('-' for stdout)")
    p.add_argument("--compare", metavar="JSON", help="another `medbridge env --json` report or a provenance sidecar")
    p.add_argument("--config", help="a run config: its container_image is recorded (and its digest, when pinned)")


def run(args) -> None:
    from medbridge import MedbridgeError
    from medbridge.environment import (
        LOCKS,
        PROJECT_ROOT,
        closest_lock,
        compare_to_lock,
        diff,
        lock_problems,
        locks_not_carried,
        report,
    )
    from medbridge.io import read_json, write_json

    image = None
    if args.config:
        from medbridge.config import load_config

        image = load_config(args.config).get("container_image")
    rec = report(image)
    if args.lock in LOCKS:
        lock = PROJECT_ROOT / LOCKS[args.lock][0]
        if not lock.is_file():  # an image carries only the lock it was built from
            raise MedbridgeError(
                f"--lock {args.lock}: {lock} is not here (an image carries only the lock it was "
                f"built from: {os.environ.get('MEDBRIDGE_IMAGE_LOCK', 'none')}); pass that one"
            )
    elif args.lock:
        lock = Path(args.lock) if Path(args.lock).is_absolute() else Path.cwd() / args.lock
        if not lock.is_file():
            lock = PROJECT_ROOT / args.lock  # relative to the checkout (the image builds from /opt/medbridge)
        if not lock.is_file():
            raise MedbridgeError(f"--lock {args.lock}: no such file; pass cpu, gpu or a lock file's path")
    else:
        lock = closest_lock(rec["packages"])
    rec["lock"] = compare_to_lock(rec["packages"], lock)
    rec["lock_problems"] = lock_problems()
    rec["locks_not_carried"] = locks_not_carried()

    if args.json_out == "-":
        json.dump(rec, sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        if args.json_out:
            write_json(args.json_out, rec)
        _print(rec)
    if args.compare:
        other = read_json(args.compare)
        if "environment" in other:  # a provenance sidecar: its recorded environment, python and container
            other = {**other["environment"], "python": other.get("python"), "container": other.get("container")}
        lines = diff(rec, other)
        print(f"\ncompared with {args.compare}: " + ("identical" if not lines else f"{len(lines)} differences"))
        for line in lines:
            print(f"  {line}")
    if args.check:
        c = rec["lock"]
        extra = [n for n in c["extra"] if n not in ("pip",)]
        bad = [f"{n}: installed {d['installed']}, locked {d['locked']}" for n, d in c["different"].items()]
        bad += [f"{n}: locked, not installed" for n in c["missing"]] + [f"{n}: installed, not locked" for n in extra]
        bad += rec["lock_problems"]
        if bad:
            raise MedbridgeError(
                f"the environment differs from {c['lock']}:\n  "
                + "\n  ".join(bad)
                + "\nfix: bash scripts/bootstrap.sh (a venv) or rebuild the image; after changing "
                "pyproject.toml, scripts/lock.sh first"
            )


def _print(rec: dict) -> None:
    c = rec["lock"]
    print(f"medbridge {rec['medbridge']}  Python {rec['python']} ({rec['implementation']})  {rec['platform']}")
    print(
        f"torch CUDA {rec.get('torch_cuda')}  driver supports CUDA {_cuda(rec['cuda_driver'])}  "
        f"cuda available: {rec.get('cuda_available')}"
    )
    box = rec["container"]
    if box:
        built = box.get("built", {})
        print(
            f"container: {box['runtime']}  digest {box.get('digest')}  image {built.get('MEDBRIDGE_IMAGE')}  "
            f"base {built.get('MEDBRIDGE_IMAGE_BASE')}"
        )
    else:
        print("container: none")
    state = "matches" if not (c["different"] or c["missing"]) else "DIFFERS from"
    print(
        f"{len(rec['packages'])} distributions (sha256 {rec['packages_sha256'][:16]}), {state} {c['lock']}"
        f" ({len(c['different'])} different, {len(c['missing'])} missing, {len(c['extra'])} not in the lock)"
    )
    for name, d in c["different"].items():
        print(f"  {name}: installed {d['installed']}, locked {d['locked']}")
    for problem in rec["lock_problems"]:
        print(f"  lock: {problem}")
    for rel in rec["locks_not_carried"]:
        print(f"  lock: {rel} not carried by this image (not checked here)")
    for name, version in rec["packages"].items():
        print(f"{name}=={version}")


def _cuda(v: int | None) -> str:
    return "none" if v is None else f"{v // 1000}.{v % 1000 // 10}"
