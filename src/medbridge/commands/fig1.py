from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--metrics", nargs="+", required=True, help="metrics/<model>/<dataset>.json files")
    p.add_argument("--csv", required=True)
    p.add_argument("--png", required=True)


def run(args) -> None:
    from medbridge.artifacts.fig1 import write_fig1
    from medbridge.io import read_json
    from medbridge.provenance import write_sidecar

    cfg = config_from(args)
    write_fig1([read_json(p) for p in args.metrics], args.csv, args.png)
    for out in (args.csv, args.png):
        write_sidecar(out, cfg, ["evaluate"], inputs=args.metrics)
    print(f"wrote {args.csv} and {args.png}")
