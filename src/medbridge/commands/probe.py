from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--features", nargs="+", required=True, help="features files (features/<model>/<dataset>.npz)")
    p.add_argument("--out", nargs="+", required=True, help="probe results to write, one per features file")


def run(args) -> None:
    from medbridge import MedbridgeError
    from medbridge.data.mcq import class_names
    from medbridge.io import write_json
    from medbridge.probe.features import load_features
    from medbridge.probe.linear import run_probe
    from medbridge.provenance import write_sidecar

    if len(args.features) != len(args.out):
        raise MedbridgeError(f"--features names {len(args.features)} files but --out {len(args.out)}; pair them")
    cfg = config_from(args)
    for feat, out in zip(args.features, args.out):
        arrays, meta = load_features(feat)
        settings = meta.get("settings") or {}  # the features file's own record; older files lack chestmnist
        chest = settings["chestmnist"] if "chestmnist" in settings else cfg["mcq"]["chestmnist"]
        result = run_probe(arrays, meta, cfg, len(class_names(meta["dataset"], chest)))
        write_json(out, result)
        write_sidecar(out, cfg, ["probe"], inputs=[feat])
        print(f"{out}: {result['head']} probe accuracy {100 * result['accuracy']:.2f}% on {result['n']} test images")
