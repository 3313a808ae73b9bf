from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument(
        "--metrics",
        nargs="+",
        required=True,
        help="metrics/<model>/<task>.json of base, sft and GRPO from sft on the task",
    )
    p.add_argument("--fig2", required=True, help="fig2_rq3_transfer.csv (the RQ3 deltas with their paired CIs)")
    p.add_argument("--csv", required=True, help="claims.csv to write")
    p.add_argument("--md", required=True, help="claims.md to write (the README's 'what the run shows')")


def run(args) -> None:
    from medbridge.artifacts.claims import write_claims
    from medbridge.provenance import write_sidecar

    cfg = config_from(args)
    table = write_claims(cfg, args.metrics, args.fig2, args.csv, args.md)
    for out in (args.csv, args.md):
        write_sidecar(out, cfg, ["evaluate", "recipe", "rq3"], inputs=[*args.metrics, args.fig2])
    for row in table.itertuples():
        print(f"{'held' if row.held else 'NOT held'}: {row.claim}: {row.numbers}")
