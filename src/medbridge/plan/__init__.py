"""What a run will cost before it runs: per GPU rule, its jobs, the GPU-hours they should spend and the GPU-hours
their SLURM requests book.

Jobs follow the config the way the DAG makes them: one `generate` and one `score` job per model over all its eval sets
(medbridge.evalsets: RQ2 models x datasets and their validation subsets for the recipe, the RQ3 grid's trained
models x their transfer targets, Table 3's models x benchmarks), the generation split over N `generate_part` jobs
per model with evaluate.job_hours (medbridge.generate.parts; `generate` then only assembles, on a CPU, and is not
counted), one `features` job per model, one training job
per trained model, one `pmc_label` job. Work comes from the config's sizes:
MCQ items (per_class x the dataset's classes, capped by the split's size; without per_class, classes x the smallest
class: counted from the data file, else known from the paper's denominators, else bounded), samples per
item, token budgets, image tokens (Qwen2.5-VL's resize under the configured pixel bounds) and model sizes (from the
hub id, e.g. "7B"). Each job also pays fixed costs: loading its model (and the judge), starting vLLM where the backend
is vLLM. GRPO rollouts are priced as they run: each GPU decodes `batch_size` rollouts at once and every GPU waits for
the longest completion of the step, at small-batch decode latency (not the throughput of a full vLLM batch).

Turning work into time needs throughputs, which are assumptions, not measurements: they are the `Assumptions` fields
(medbridge.plan.assumptions), each documented and overridable on the command line (`medbridge plan --help`). Two
estimates: "typical" (mean completion = completion_fraction x the token budget; the longest GRPO rollout =
longest_fraction x it) and "at budget" (every completion runs to its budget). Beside them: "booked", the GPU-hours the
profile reserves (runtime x GPUs x jobs, the most a run can be charged), the largest job's wall hours at budget
beside the hours booked for one job (a note when it does not fit), and, where a run has left Snakemake benchmark
files (results/<run>/benchmarks/<rule>/<wildcards>.tsv), "calibrated": the estimate scaled by measured / estimated of
the jobs measured.

The code: medbridge.plan.sizes (the config's sizes), .assumptions (the throughputs, `Job`), .costs (one cost function
per GPU rule), .profile (the profile's requests, benchmark files), .estimate (`plan`: the rules summed, memory and
disk), .report (`format_plan`).
"""

from medbridge.bookings import GPU_RULES
from medbridge.plan.assumptions import Assumptions, Job
from medbridge.plan.costs import COSTS, generation_work
from medbridge.plan.estimate import plan
from medbridge.plan.profile import DEFAULT_CARD_GIB, calibrate, card_memory_gib, profile_requests, read_benchmarks
from medbridge.plan.report import format_plan
from medbridge.plan.sizes import Sizes, eval_items, image_tokens, n_items, smallest_class, split_size

__all__ = [
    "COSTS",
    "DEFAULT_CARD_GIB",
    "GPU_RULES",
    "Assumptions",
    "Job",
    "Sizes",
    "calibrate",
    "card_memory_gib",
    "eval_items",
    "format_plan",
    "generation_work",
    "image_tokens",
    "n_items",
    "plan",
    "profile_requests",
    "read_benchmarks",
    "smallest_class",
    "split_size",
]
