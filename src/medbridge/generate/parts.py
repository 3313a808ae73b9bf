"""How many `generate_part` jobs generate one model's eval sets: enough that each fits `evaluate.job_hours`.

The cluster books every job for a fixed wall time. A model's whole generation (the paper's base model: 24 eval sets x
17 answers per item) is far longer than any booking, so with `evaluate.job_hours` set, the DAG splits it into N part
jobs that run at once on one GPU each (medbridge.generate.run.Part), and N is the model's at-budget estimate of
`medbridge plan` (every completion at its token budget) over the hours one job may spend, its fixed cost (model load,
engine start) paid by every part. The count comes from the config alone, never from data files, so the DAG does not
change when the data arrives; it is at most the model's number of shards (a part owns whole shards).
"""

from __future__ import annotations

import math

from medbridge import MedbridgeError


def generation_parts(cfg: dict) -> dict[str, int]:
    """model -> number of generate_part jobs, for every model the DAG generates; {} without evaluate.job_hours (each
    model's one generate job generates everything)."""
    hours = cfg["evaluate"].get("job_hours")
    if not hours:
        return {}
    from medbridge.plan import Assumptions, generation_estimates

    limit_s = hours * 3600
    shard_size = cfg["evaluate"].get("shard_size", 256)
    parts = {}
    for model, est in generation_estimates(cfg, Assumptions(), count_files=False).items():
        if est.fixed_s >= limit_s:
            raise MedbridgeError(f"evaluate.job_hours {hours:g} is shorter than loading {model} and starting its "
                                 f"engine (~{est.fixed_s / 60:.0f} min by `medbridge plan`); raise it")  # fmt: skip
        shards = sum(math.ceil(items / shard_size) for items in est.items)
        parts[model] = max(1, min(shards, math.ceil(est.work_budget_s / (limit_s - est.fixed_s))))
    return parts
