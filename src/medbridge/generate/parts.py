"""How many `generate_part` jobs generate one model's eval sets: enough that each fits `evaluate.job_hours`.

The cluster books every job for a fixed wall time. A model's whole generation (the paper's base model: 24 eval sets x
17 answers per item) is far longer than any booking, so with `evaluate.job_hours` set, the DAG splits it into N part
jobs that run at once on one GPU each (medbridge.generate.run.Part), and N is the least number of parts whose
at-budget estimate by `medbridge plan` (every completion at its token budget, medbridge.plan.costs.generation_work)
fits the hours one job may spend, the fixed cost (model load, engine start) paid by every part. The count comes from
the config alone, never from data files, so the DAG does not change when the data arrives; it is at most the model's
number of shards (a part owns whole shards).
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
    from medbridge.plan import Assumptions, Sizes, generation_work

    a = Assumptions()
    sizes = Sizes(cfg, {}, a.reference_params_b, count_files=False)
    limit_s = hours * 3600
    shard_size = cfg["evaluate"]["shard_size"]
    parts = {}
    for model, sets in sizes.eval_sets().items():
        work = generation_work(sizes, a, model, sets)
        if work.fixed_s >= limit_s:
            raise MedbridgeError(
                f"evaluate.job_hours {hours:g} is shorter than loading {model} and starting its "
                f"engine (~{work.fixed_s / 60:.0f} min by `medbridge plan`); raise it"
            )
        shards = sum(math.ceil(s.items / shard_size) for s in sets)
        parts[model] = max(1, min(shards, math.ceil(work.budget_s / (limit_s - work.fixed_s))))
    return parts
