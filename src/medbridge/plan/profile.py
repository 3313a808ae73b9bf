"""What the cluster books and what it measured: the GPUs and runtimes a Snakemake profile requests per GPU rule, its
cards' memory, and the wall seconds of a run's Snakemake benchmark files, which calibrate the estimate."""

from __future__ import annotations

from pathlib import Path

from medbridge import MedbridgeError
from medbridge.bookings import GPU_RULES, booking
from medbridge.plan.assumptions import Job


def _read_profile(profile: str | Path) -> dict:
    """The profile as Snakemake reads it (a YTE template, __variables__ filled in)."""
    import yte

    path = Path(profile)
    path = path / "config.yaml" if path.is_dir() else path
    if not path.is_file():
        raise MedbridgeError(f"profile {path} not found; pass a Snakemake profile folder such as profiles/slurm")
    with open(path) as f:
        return yte.process_yaml(f, require_use_yte=True) or {}


def _at_attempt_one(raw):
    return eval(str(raw), {"attempt": 1, "min": min, "max": max}) if raw is not None else None  # noqa: S307


def profile_requests(profile: str | Path | None, cfg: dict) -> dict[str, dict]:
    """rule -> {gpus, runtime (minutes), mem_mb, partition} of attempt 1 for each rule that runs on GPUs under `cfg`:
    the rule's own booking (medbridge.bookings, what its `resources:` declare), with the profile's set-resources for
    the rule over it, as Snakemake applies them (the profile's default-resources do not reach a resource the rule
    declares)."""
    overrides = (_read_profile(profile).get("set-resources") or {}) if profile is not None else {}
    out = {}
    for rule in GPU_RULES:
        b = booking(rule, cfg)
        if b is None:
            continue
        res = {"gpu": b.gpus, "runtime": b.runtime, "mem_mb": b.mem_mb, **(overrides.get(rule) or {})}
        out[rule] = {
            "gpus": int(_at_attempt_one(res["gpu"])),
            "runtime": _at_attempt_one(res["runtime"]),
            "mem_mb": _at_attempt_one(res["mem_mb"]),
            "partition": res.get("slurm_partition") or None,  # a name, not an expression
        }
    return out


def site_problems(profile: str | Path | None, requests: dict[str, dict]) -> list[str]:
    """What a GPU job books beyond the site's limits (the profile's __variables__ max_runtime, max_mem_mb), and a GPU
    job without the GPU partition the profile gives the others: SLURM would refuse or never start it."""
    if profile is None:
        return []
    import yaml

    path = Path(profile) / "config.yaml" if Path(profile).is_dir() else Path(profile)
    limits = (yaml.safe_load(path.read_text()) or {}).get("__variables__") or {}
    problems = []
    for rule, q in requests.items():
        for key, limit in (("runtime", "max_runtime"), ("mem_mb", "max_mem_mb")):
            if limits.get(limit) is not None and q[key] is not None and q[key] > limits[limit]:
                problems.append(
                    f"{rule}: books {key} {q[key]:g}, above the site's {limit} {limits[limit]:g} ({path}): set "
                    f"`{key}` under set-resources.{rule} there (a training job resumes from its checkpoints)"
                )
    partitions = {q["partition"] for q in requests.values() if q["partition"]}
    for rule, q in requests.items():
        if partitions and not q["partition"]:
            problems.append(
                f"{rule}: runs on GPUs under this config but {path} gives it no GPU partition"
                + (
                    " (generation is not split: set evaluate.job_hours, the paper's 3, or slurm_partition under "
                    "set-resources.generate)"
                    if rule == "generate"
                    else f": add `slurm_partition: *gpu_partition` under set-resources.{rule}"
                )
            )
    return problems


DEFAULT_CARD_GIB = 79.0  # an 80 GB A100/H100 as CUDA reports it (79.2 GiB)


def card_memory_gib(profile: str | Path | None) -> float:
    """`__variables__.gpu_memory_gib` of a profile: the memory of one of its GPUs (default an 80 GB card)."""
    import yaml

    if profile is None:
        return DEFAULT_CARD_GIB
    profile_file = Path(profile) / "config.yaml" if Path(profile).is_dir() else Path(profile)
    with open(profile_file) as f:  # the raw template: YTE consumes __variables__
        raw = yaml.safe_load(f) or {}
    value = (raw.get("__variables__") or {}).get("gpu_memory_gib", DEFAULT_CARD_GIB)
    if not isinstance(value, (int, float)) or value <= 0:
        raise MedbridgeError(f"{profile_file}: __variables__.gpu_memory_gib must be a positive number of GiB")
    return float(value)


def read_benchmarks(root: str | Path) -> dict[str, dict[str, float]]:
    """rule -> {wildcards: wall seconds} from Snakemake benchmark files <root>/<rule>/<wildcards>.tsv (mean over
    repeats); the `s` column."""
    import csv

    root = Path(root)
    if not root.is_dir():
        raise MedbridgeError(f"--benchmarks {root} is not a folder; pass results/<run>/benchmarks of a run")
    out: dict[str, dict[str, float]] = {}
    for rule_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for tsv in sorted(rule_dir.rglob("*.tsv")):
            with open(tsv, newline="") as f:
                rows = [float(r["s"]) for r in csv.DictReader(f, delimiter="\t") if r.get("s") not in (None, "", "NA")]
            if rows:
                out.setdefault(rule_dir.name, {})[str(tsv.relative_to(rule_dir).with_suffix(""))] = sum(rows) / len(
                    rows
                )
    return out


def calibrate(rule: str, jobs: list[Job], measured: dict[str, float], notes: list[str]) -> float | None:
    """The rule's typical estimate scaled by measured / estimated GPU-seconds of its jobs that left a benchmark."""
    by_key = {j.key: j for j in jobs}
    if rule == "pmc_label" and len(measured) == 1:  # one job, whatever its file is called
        measured = {"pmc_label": next(iter(measured.values()))}
    matched = {k: s for k, s in measured.items() if k in by_key}
    if set(measured) - set(matched):
        notes.append(f"{rule}: benchmark files of no planned job ignored: {sorted(set(measured) - set(matched))}")
    if not matched:
        return None
    est = sum(by_key[k].typical_gpu_s for k in matched)
    real = sum(s * by_key[k].gpus for k, s in matched.items())
    factor = real / est if est else float("nan")
    notes.append(f"{rule}: {len(matched)} of {len(jobs)} jobs measured, {factor:.2g}x their estimate")
    return factor * sum(j.typical_gpu_s for j in jobs) / 3600
