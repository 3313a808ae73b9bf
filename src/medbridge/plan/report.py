"""The plan as text: the table of GPU rules, the assumptions with their help, memory, disk and notes."""

from __future__ import annotations

from dataclasses import fields

from medbridge.plan.assumptions import Assumptions


def format_plan(result: dict) -> str:
    """The text `medbridge plan` prints for a `medbridge.plan.plan` result."""
    from tabulate import tabulate

    def hours(x: float | None) -> str:
        return "" if x is None else f"{x:,.1f}" if x >= 0.1 else f"{x:.2g}"

    table = [
        [
            r["rule"],
            r["jobs"],
            r["gpus_per_job"],
            hours(r["gpu_hours"]),
            hours(r["gpu_hours_at_budget"]),
            hours(r["fixed_gpu_hours"]),
            hours(r["booked_gpu_hours"]),
            hours(r["calibrated_gpu_hours"]),
            hours(r["largest_job_hours_at_budget"])
            + ("" if r["booked_hours_per_job"] is None else f" / {r['booked_hours_per_job']:g}"),
            r["parts"],
        ]
        for r in result["rows"]
    ]
    table.append(
        [
            "total",
            result["total_jobs"],
            "",
            hours(result["total_gpu_hours"]),
            hours(result["total_gpu_hours_at_budget"]),
            hours(sum(r["fixed_gpu_hours"] for r in result["rows"])),
            hours(result["total_booked_gpu_hours"]),
            "",
            "",
            "",
        ]
    )
    helps = {f.name: f.metadata["help"] for f in fields(Assumptions)}
    booked = f"booked = runtime x GPUs x jobs of {result['profile']}" if result["profile"] else "no profile: no booking"
    lines = [
        f"GPU plan of run {result['run_name']!r}: estimates, not measurements; CPU rules are not counted; {booked}",
        "",
        tabulate(
            table,
            headers=[
                "rule",
                "jobs",
                "GPUs/job",
                "GPU-h typical",
                "GPU-h at budget",
                "of which fixed",
                "GPU-h booked",
                "calibrated",
                "longest job: h / booked",
                "parts",
            ],
        ),
        "",
        "Assumptions (override with the flags of `medbridge plan --help`):",
    ]
    lines += [f"  {k} = {v:g}: {helps[k]}" for k, v in result["assumptions"].items()]
    lines += [
        "",
        f"GPU memory per GPU of each rule's largest job, on {result['gpu_memory_gib']:g} GiB cards "
        "(profile __variables__.gpu_memory_gib; medbridge.plan_memory):",
    ]
    lines += [
        f"  {m['rule']} {m['job']} ({m['gpus']} GPU): {m['needs_gib']:.1f} of {m['has_gib']:.1f} GiB = "
        + ", ".join(f"{k} {v:.1f}" for k, v in m["parts"].items())
        for m in result["memory"]
    ]
    for d in result["disk"]:
        lines.append(
            f"Checkpoint disk, {d['rule']}: {d['checkpoint_gb']:.0f} GB each, {d['kept']} kept per run, "
            f"{d['runs']} runs: {d['all_runs_gb']:,.0f} GB if all run at once"
            + (
                ""
                if d["save_only_model"]
                else "; train.<kind>.save_only_model: weights only (a killed run then starts over)"
            )
        )
    if result["notes"]:
        lines += ["Notes:"] + [f"  {n}" for n in result["notes"]]
    return "\n".join(lines)
