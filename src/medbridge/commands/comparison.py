from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--probes", nargs="*", default=[], help="probe/<model>/<dataset>.json files (Table 1)")
    p.add_argument("--metrics", nargs="*", default=[], help="metrics JSONs (Table 2 datasets, Table 3 benchmarks)")
    p.add_argument("--csv", required=True)
    p.add_argument("--md", required=True)


def run(args) -> None:
    from medbridge.artifacts.comparison import write_comparison
    from medbridge.artifacts.table3 import reported_row
    from medbridge.provenance import write_sidecar

    cfg = config_from(args)
    vqa_rows = {role: row for role in cfg["models"] if (row := reported_row(cfg, role))}
    df = write_comparison(args.probes, args.metrics, vqa_rows, args.csv, args.md, cfg)
    for out in (args.csv, args.md):
        write_sidecar(
            out,
            cfg,
            ["models", "evaluate", "probe", "mcq", "train", "vqa", "recipe"],
            inputs=[*args.probes, *args.metrics],
        )  # the ledger columns read every section
    print(f"wrote {args.csv} ({len(df)} comparisons)")
