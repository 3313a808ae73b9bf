from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    from dataclasses import fields

    from medbridge.plan import Assumptions

    add_config_argument(p)
    for f in fields(Assumptions):  # every throughput assumption is a flag, documented where it is defined
        p.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=type(f.default),
            default=f.default,
            help=f"{f.metadata['help']} (default {f.default:g})",
        )
    p.add_argument(
        "--model-size",
        nargs="+",
        default=[],
        metavar="ROLE=BILLIONS",
        help="parameters of a model role whose hub id does not say them, e.g. medvlm_r1=2",
    )
    p.add_argument(
        "--profile",
        default="profiles/slurm",
        help="Snakemake profile whose GPUs and runtimes the jobs book (default profiles/slurm; 'none')",
    )
    p.add_argument("--benchmarks", help="a run's benchmark folder (results/<run>/benchmarks) to calibrate against")
    p.add_argument("--json", help="also write the plan as JSON here")


def run(args) -> None:
    from dataclasses import fields

    from medbridge import MedbridgeError
    from medbridge.plan import Assumptions, format_plan, plan

    sizes = {}
    for item in args.model_size:
        role, _, value = item.partition("=")
        try:
            sizes[role] = float(value)
        except ValueError:
            raise MedbridgeError(f"--model-size {item!r}: write ROLE=BILLIONS, e.g. medvlm_r1=2") from None
    assumptions = Assumptions(**{f.name: getattr(args, f.name) for f in fields(Assumptions)})
    for f in fields(Assumptions):
        if getattr(assumptions, f.name) <= 0 or (f.name.endswith("fraction") and getattr(assumptions, f.name) > 1):
            raise MedbridgeError(f"--{f.name.replace('_', '-')} must be positive (fractions at most 1)")
    profile = None if args.profile.lower() == "none" else args.profile
    result = plan(config_from(args), assumptions, sizes, profile, args.benchmarks)
    print(format_plan(result))
    if args.json:
        from medbridge.io import write_json

        write_json(args.json, result)
