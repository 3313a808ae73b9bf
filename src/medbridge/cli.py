"""`medbridge <verb>`: the one entry point every Snakemake rule calls.

Each verb lives in medbridge/commands/<module>.py with `add_arguments(parser)` and `run(args)`; modules are imported
only when their verb runs, so `medbridge --help` and light verbs start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from medbridge import MedbridgeError, __version__

# verb -> (module under medbridge.commands, one-line help)
VERBS = {
    "validate-config": ("validate_config", "validate a config file (and overrides) against config/schema.yaml"),
    "freeze-config": ("validate_config", "validate a config and write it as the run's frozen config.json"),
    "data": ("data", "make (synthetic) or download (medmnist) one MedMNIST npz file"),
    "data-check": ("data_check", "read a MedMNIST npz back split by split and check its layout (a cluster job)"),
    "build-tiny": ("build_tiny", "build the tiny Qwen2.5-VL model of the tiny profile"),
    "items": ("items", "turn one MedMNIST split into multiple-choice items (JSONL)"),
    "features": ("features", "frozen vision-tower features of one model on MedMNIST datasets (cached npz)"),
    "probe": ("probe", "fit and score the linear probe on cached features (one JSON per dataset)"),
    "table1": ("table1", "Table 1: linear-probe accuracy per model and MedMNIST task, beside the reported values"),
    "generate": ("generate", "greedy + n sampled answers of a model on an item set (resumable shards)"),
    "score": ("score", "judge the answers and compute Acc@1, unbiased Pass@k, CIs (metrics JSON)"),
    "table2": ("table2", "Table 2: Accuracy@1 per model and MedMNIST task, beside the reported values"),
    "fig1": ("fig1", "Figure 1: Pass@K curves by modality (PNG + the plotted CSV)"),
    "sft": ("sft", "SFT bridge: TRL SFTTrainer on MCQ items -> a model directory"),
    "grpo": ("grpo", "GRPO / GRPO-CARE with TRL GRPOTrainer on MCQ items -> a model directory"),
    "rq3": ("rq3", "Figure 2 (RQ3): before/after-RL transfer grid (CSV + heatmap PNG)"),
    "claims": ("claims", "the paper's claims about RL checked on the run's metrics and Figure 2: held or not"),
    "comparison": ("comparison", "every reproduced number beside the paper's reported one, with delta and CI check"),
    "audit": ("audit", "trace a table cell or metrics file to its generations and recompute it from the raw texts"),
    "vqa-fixture": ("vqa_fixture", "write a tiny local dataset in a VQA source's own raw shape (tiny profile)"),
    "vqa-items": ("vqa_items", "turn one Table 3 benchmark into MCQ items (JSONL + PNG images + skipped.json)"),
    "fidelity": ("fidelity", "the fidelity ledger (docs/FIDELITY.md): every open choice, the authors' code, the keys"),
    "vqa-counts": ("vqa_counts", "per Table 3 benchmark, the items each source yields (MedVLThinker-Eval vs raw)"),
    "pmc-label": ("pmc_label", "label each PMC-VQA training question's imaging modality (VLM or keyword stand-in)"),
    "pmc-balance": ("pmc_balance", "draw the seeded modality-balanced PMC-VQA RL subset as training items"),
    "table3": ("table3", "Table 3: Accuracy@1 per model on six medical VQA benchmarks, beside the reported values"),
    "diagnose": ("diagnose", "Support@K, Acc@1 and gap of a model on an item set -> bridge (SFT) or sharpen (RL)"),
    "recipe": ("recipe", "the boundary-aware recipe's decision for every MedMNIST task x evaluated model (CSV)"),
    "download-model": ("download_model", "fetch a hub model role at its revision into the hub cache (login node)"),
    "download-dataset": ("download_dataset", "fetch a hub dataset the config reads into the hub cache (login node)"),
    "plan": ("plan", "jobs and estimated GPU-hours per GPU rule of a config, before running it (docs/CLUSTER.md)"),
    "env": ("env", "the exact environment (Python, every package, CUDA, image digest) against the lock; compare two"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medbridge", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"medbridge {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, (module, help_) in VERBS.items():
        p = sub.add_parser(verb, help=help_, description=help_)
        p.set_defaults(_module=module, _verb=verb)
        if verb in sys.argv[1:2]:
            _command(module).add_arguments(p)  # only the verb being run (or asked about) is imported
    return parser


def _command(module: str):
    return importlib.import_module(f"medbridge.commands.{module}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    sys.argv = [sys.argv[0], *argv]
    args = build_parser().parse_args(argv)
    from medbridge.scratch import use_job_scratch

    use_job_scratch()  # a cluster job's caches on node-local scratch, not the shared checkout (before any import)
    try:
        if args._verb != "env":  # in the image: refuse a too-old NVIDIA driver before torch silently uses the CPU
            from medbridge.environment import check_cuda_driver

            check_cuda_driver()
        _command(args._module).run(args)
    except MedbridgeError as e:
        print(f"medbridge {args._verb}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
