from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--metrics", nargs="+", required=True, help="metrics/<model>/<benchmark>.json files")
    p.add_argument("--csv", required=True)
    p.add_argument("--md", required=True)


def run(args) -> None:
    from medbridge.artifacts.table3 import write_table3
    from medbridge.io import read_json
    from medbridge.provenance import write_sidecar

    cfg = config_from(args)
    write_table3(cfg, [read_json(p) for p in args.metrics], args.csv, args.md)
    for out in (args.csv, args.md):
        write_sidecar(out, cfg, ["vqa", "evaluate"], inputs=args.metrics)
    print(f"wrote {args.csv} and {args.md}")
