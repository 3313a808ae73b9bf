"""Every job fits the time it books (issue #21 item 3): for the paper's config and the SLURM profile, each GPU rule's
booked wall time is at least `medbridge plan`'s at-budget estimate of its largest job. Generation fits by being split
into parts (evaluate.job_hours); training, which no 48 h limit holds at budget, goes on from its checkpoints over the
profile's attempts, and the plan says so."""

from __future__ import annotations

import copy

import pytest
import yaml

from medbridge.config import load_config
from medbridge.generate.parts import generation_parts
from medbridge.plan import plan

from .conftest import ROOT

PROFILE = ROOT / "profiles" / "slurm"
RESUMES_OVER_ATTEMPTS = {"sft_model", "grpo_model"}  # training continues from its last checkpoint on a retry


@pytest.fixture(scope="module", params=["paper.yaml", "pilot.yaml"])
def planned(request):
    cfg = load_config(ROOT / "config" / request.param)
    return cfg, plan(cfg, profile=PROFILE)


def test_every_rules_largest_job_fits_its_booking(planned):
    _, result = planned
    attempts = 1 + yaml.safe_load((PROFILE / "config.yaml").read_text())["retries"]
    for row in result["rows"]:
        need, booked = row["largest_job_hours_at_budget"], row["booked_hours_per_job"]
        if row["rule"] in RESUMES_OVER_ATTEMPTS and need > booked:
            assert need <= booked * attempts, row
            assert any(n.startswith(f"{row['rule']}: job {row['largest_job']} needs") for n in result["notes"])
        else:
            assert need <= booked, f"{row['rule']}: {row['largest_job']} needs {need:.1f} h, booked {booked:g} h"


def test_generation_is_split_into_parts_of_at_most_job_hours(planned):
    cfg, result = planned
    rows = {r["rule"]: r for r in result["rows"]}
    assert "generate" not in rows  # with job_hours, generate only assembles, on a CPU
    parts = generation_parts(cfg)
    part = rows["generate_part"]
    assert part["jobs"] == sum(parts.values()) and part["gpus_per_job"] == 1
    assert part["largest_job_hours_at_budget"] <= cfg["evaluate"]["job_hours"]
    assert set(part["jobs_detail"]) == {f"{m}/{i}-of-{n}" for m, n in parts.items() for i in range(1, n + 1)}


def test_n_is_the_least_number_of_parts_that_fits(planned):
    """The parts share the model's work and each pays its own load; the same work over N - 1 parts would outlast
    job_hours (unless N is capped by the shard count)."""
    cfg, result = planned
    details = next(r for r in result["rows"] if r["rule"] == "generate_part")["jobs_detail"]
    unsplit = copy.deepcopy(cfg)
    del unsplit["evaluate"]["job_hours"]
    whole = next(r for r in plan(unsplit)["rows"] if r["rule"] == "generate")["jobs_detail"]
    limit = cfg["evaluate"]["job_hours"]
    split = 0
    for model, n in generation_parts(cfg).items():
        mine = [details[f"{model}/{i}-of-{n}"] for i in range(1, n + 1)]
        fixed_h = mine[0]["fixed_s"] / 3600
        assert sum(p["gpu_hours_at_budget"] for p in mine) == pytest.approx(
            whole[model]["gpu_hours_at_budget"] + (n - 1) * fixed_h
        )
        if n > 1:
            split += 1
            work_h = whole[model]["gpu_hours_at_budget"] - fixed_h
            assert work_h / (n - 1) + fixed_h > limit
    assert split or cfg["run_name"] == "pilot"  # the paper splits the base, sft and rl models' generations
