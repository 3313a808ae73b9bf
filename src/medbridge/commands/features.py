from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--model", required=True, help="model role (e.g. base) whose vision tower is probed")
    p.add_argument("--datasets", nargs="+", required=True, help="MedMNIST flags, in the order of --npz and --out")
    p.add_argument("--npz", nargs="+", required=True, help="the datasets' MedMNIST npz files")
    p.add_argument("--out", nargs="+", required=True, help="features files to write (features/<model>/<dataset>.npz)")


def run(args) -> None:
    from medbridge import MedbridgeError
    from medbridge.probe.features import extract_features

    if not len(args.datasets) == len(args.npz) == len(args.out):
        raise MedbridgeError(
            f"--datasets ({len(args.datasets)}), --npz ({len(args.npz)}) and --out ({len(args.out)}) "
            "must name the same number of files, in the same order"
        )
    cfg = config_from(args)
    written = extract_features(cfg, args.model, list(zip(args.datasets, args.npz, args.out)))
    print(f"{args.model}: wrote {len(written)} of {len(args.out)} features files (the rest were cached)")
