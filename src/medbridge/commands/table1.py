from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--probes", nargs="+", required=True, help="probe results (probe/<model>/<dataset>.json)")
    p.add_argument("--csv", required=True, help="table1_probe.csv to write")
    p.add_argument("--md", required=True, help="table1_probe.md to write")


def run(args) -> None:
    from medbridge.artifacts.table1 import model_sources, write_table1

    cfg = config_from(args)
    from medbridge.provenance import write_sidecar

    df = write_table1(args.probes, args.csv, args.md, model_sources(cfg))
    for out in (args.csv, args.md):
        write_sidecar(out, cfg, ["probe", "models"], inputs=args.probes)
    print(f"wrote {args.csv} and {args.md} ({len(df)} rows)")
