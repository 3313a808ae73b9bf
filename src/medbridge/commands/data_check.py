from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--dataset", required=True, help="MedMNIST flag, e.g. organamnist")
    p.add_argument("--npz", required=True, help="the file `medbridge data` wrote")
    p.add_argument("--out", required=True, help="JSON record of the checked splits (counts and shapes)")


def run(args) -> None:
    from medbridge.data.medmnist import check
    from medbridge.io import write_json
    from medbridge.provenance import write_sidecar

    cfg = config_from(args)
    splits = check(args.npz, args.dataset)
    write_json(args.out, {"dataset": args.dataset, "npz": args.npz, "splits": splits})
    write_sidecar(args.out, cfg, ["data"], inputs=[args.npz])
    print(f"{args.npz}: " + ", ".join(f"{s} {v['n']}" for s, v in splits.items()))
