"""The plan of one config: each GPU rule's jobs priced (medbridge.plan.costs), summed per rule, set beside what the
profile books and what benchmark files measured, with per-GPU memory and checkpoint disk (medbridge.plan_memory)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from medbridge import plan_memory
from medbridge.plan.assumptions import Assumptions, Job
from medbridge.plan.costs import COSTS
from medbridge.plan.profile import calibrate, card_memory_gib, profile_requests, read_benchmarks, site_problems
from medbridge.plan.sizes import Sizes


def rule_row(rule: str, jobs: list[Job], runtime: float | None, calibrated: float | None) -> dict:
    """One rule's line of the plan: its jobs summed, in GPU-hours; booked = runtime (minutes) x GPUs of each job;
    the largest job's wall hours at budget beside the hours the profile books one job for."""
    largest = max(jobs, key=lambda j: j.budget_gpu_s / j.gpus)
    return {
        "rule": rule,
        "parts": ", ".join(dict.fromkeys(p for j in jobs for p in j.parts)),
        "jobs": len(jobs),
        "gpus_per_job": max(j.gpus for j in jobs),
        "gpu_hours": sum(j.typical_gpu_s for j in jobs) / 3600,
        "gpu_hours_at_budget": sum(j.budget_gpu_s for j in jobs) / 3600,
        "fixed_gpu_hours": sum(j.fixed_s * j.gpus for j in jobs) / 3600,
        "booked_gpu_hours": None if runtime is None else sum(runtime / 60 * j.gpus for j in jobs),
        "calibrated_gpu_hours": calibrated,
        "largest_job": largest.key,
        "largest_job_hours_at_budget": largest.budget_gpu_s / largest.gpus / 3600,
        "booked_hours_per_job": None if runtime is None else runtime / 60,
        "jobs_detail": {
            j.key: {
                "gpus": j.gpus,
                "gpu_hours": j.typical_gpu_s / 3600,
                "gpu_hours_at_budget": j.budget_gpu_s / 3600,
                "fixed_s": j.fixed_s,
            }
            for j in jobs
        },
    }


def longer_than_booked(row: dict) -> list[str]:
    """A note when a rule's largest job, at budget, outlasts the wall time the profile books for it."""
    hours, booked = row["largest_job_hours_at_budget"], row["booked_hours_per_job"]
    if booked is None or hours <= booked:
        return []
    goes_on = {
        "grpo_model": "it goes on from its last checkpoint in the next attempt (profile retries)",
        "sft_model": "it goes on from its last checkpoint in the next attempt (profile retries)",
    }
    return [
        f"{row['rule']}: job {row['largest_job']} needs {hours:.1f} h at budget, longer than the {booked:g} h "
        f"booked; "
        + goes_on.get(row["rule"], "raise its runtime in the profile (or split it: evaluate.job_hours for generation)")
    ]


def memory_and_disk(sizes: Sizes, a: Assumptions, gpus: dict[str, int], card_gib: float):
    """medbridge.plan_memory over the roles each GPU rule loads."""
    cfg, pmc = sizes.cfg, (sizes.cfg.get("vqa") or {}).get("pmc") or {}
    grpo = [name for name, _ in sizes.grpo_runs()]
    sft = sizes.sft_roles()
    generating = "generate_part" if cfg["evaluate"].get("job_hours") else "generate"  # the rule that loads the model
    roles = {
        generating: list(sizes.eval_sets()),
        "sft_model": sft,
        "grpo_model": grpo,
        "score": ["judge"] if cfg["evaluate"]["judge"] == "vlm" and "judge" in cfg["models"] else [],
        "pmc_label": [pmc["judge"]] if pmc.get("labeller") == "vlm" else [],
    }
    rows, problems, notes = plan_memory.memory_plan(cfg, a, gpus, card_gib, roles)
    sizes.notes.extend(notes)
    return rows, problems, plan_memory.disk_plan(cfg, a, {"sft_model": sft, "grpo_model": grpo})


def plan(
    cfg: dict,
    assumptions: Assumptions | None = None,
    model_sizes: dict[str, float] | None = None,
    profile: str | Path | None = None,
    benchmarks: str | Path | None = None,
) -> dict:
    """Per GPU rule: jobs, GPUs per job, GPU-hours (typical, at budget, of which fixed costs), booked GPU-hours of
    the profile, and calibrated GPU-hours where benchmark files exist; totals; the assumptions and notes."""
    requests = profile_requests(profile, cfg)
    card_gib = card_memory_gib(profile)
    a = assumptions or Assumptions()
    gpus = {r: q["gpus"] for r, q in requests.items()}
    sizes = Sizes(cfg, dict(model_sizes or {}), a.reference_params_b)
    measured = read_benchmarks(benchmarks) if benchmarks else {}
    rows = []
    for rule, cost in COSTS.items():
        jobs = cost(sizes, a, gpus)
        if jobs:
            calibrated = calibrate(rule, jobs, measured.get(rule, {}), sizes.notes)
            rows.append(rule_row(rule, jobs, requests.get(rule, {}).get("runtime"), calibrated))
    for r in rows:
        sizes.notes += longer_than_booked(r)
    booked = [r["booked_gpu_hours"] for r in rows]
    memory, problems, disk = memory_and_disk(sizes, a, gpus, card_gib)
    if profile is None:  # the card's memory unknown: shown, not enforced
        sizes.notes.append("no profile: per-GPU memory is shown for the rules' own GPUs and is not checked")
    else:
        plan_memory.refuse(problems + site_problems(profile, requests))
    return {
        "run_name": cfg["run_name"],
        "profile": str(profile) if profile else None,
        "rows": rows,
        "total_jobs": sum(r["jobs"] for r in rows),
        "total_gpu_hours": sum(r["gpu_hours"] for r in rows),
        "total_gpu_hours_at_budget": sum(r["gpu_hours_at_budget"] for r in rows),
        "total_booked_gpu_hours": None if None in booked else sum(booked),
        "gpu_memory_gib": card_gib,
        "memory": memory,
        "disk": disk,
        "assumptions": asdict(a),
        "notes": list(dict.fromkeys(sizes.notes)),
    }
