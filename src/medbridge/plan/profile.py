"""What the cluster books and what it measured: the GPUs and runtimes a Snakemake profile requests per GPU rule, its
cards' memory, and the wall seconds of a run's Snakemake benchmark files, which calibrate the estimate."""

from __future__ import annotations

from pathlib import Path

from medbridge import MedbridgeError
from medbridge.plan.assumptions import Job
from medbridge.plan.costs import GPU_RULES


def profile_requests(profile: str | Path | None) -> dict[str, dict]:
    """rule -> {gpus, runtime (minutes)} of attempt 1, as a Snakemake profile (a YTE template) asks for them; GPU
    rules it does not name get 1 GPU and the default runtime."""
    if profile is None:
        return {}
    import yte

    path = Path(profile)
    path = path / "config.yaml" if path.is_dir() else path
    if not path.is_file():
        raise MedbridgeError(f"profile {path} not found; pass a Snakemake profile folder such as profiles/slurm")
    with open(path) as f:
        prof = yte.process_yaml(f, require_use_yte=True) or {}

    def value(raw):
        return eval(str(raw), {"attempt": 1, "min": min, "max": max}) if raw is not None else None  # noqa: S307

    default = prof.get("default-resources") or {}
    out = {}
    for rule in GPU_RULES:
        res = {**default, **(prof.get("set-resources") or {}).get(rule, {})}
        out[rule] = {"gpus": int(value(res.get("gpu")) or 1), "runtime": value(res.get("runtime"))}
    return out


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
