from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument(
        "--metrics",
        nargs="+",
        required=True,
        help="metrics/<model>/<evalset>.json of the init models and the rq3-<init>-<task> models",
    )
    p.add_argument("--csv", required=True, help="fig2_rq3_transfer.csv to write")
    p.add_argument("--png", required=True, help="fig2_rq3_transfer.png to write")


def run(args) -> None:
    from medbridge.artifacts.rq3 import write_rq3
    from medbridge.provenance import write_sidecar

    cfg = config_from(args)
    table = write_rq3(cfg, args.metrics, args.csv, args.png)
    for out in (args.csv, args.png):
        write_sidecar(out, cfg, ["rq3", "evaluate"], inputs=args.metrics)
    print(f"wrote {len(table)} rows to {args.csv} and the heatmap {args.png}")
