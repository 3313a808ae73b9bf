from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--model", required=True, help="model role (e.g. base) whose vision tower is probed")
    p.add_argument("--datasets", nargs="+", required=True, help="MedMNIST flags, in the order of --npz and --out")
    p.add_argument("--npz", nargs="+", required=True, help="the datasets' MedMNIST npz files")
    p.add_argument("--out", nargs="+", required=True, help="features files to write (features/<model>/<dataset>.npz)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="the job's cores: one runs the tower, the others prepare images (DataLoader workers)",
    )


def run(args) -> None:
    from pathlib import Path

    from medbridge import MedbridgeError
    from medbridge.models.registry import resolve
    from medbridge.probe.features import extract_features
    from medbridge.provenance import write_sidecar

    if not len(args.datasets) == len(args.npz) == len(args.out):
        raise MedbridgeError(
            f"--datasets ({len(args.datasets)}), --npz ({len(args.npz)}) and --out ({len(args.out)}) "
            "must name the same number of files, in the same order"
        )
    cfg = config_from(args)
    jobs = list(zip(args.datasets, args.npz, args.out))
    written = set(extract_features(cfg, args.model, jobs, workers=max(0, args.threads - 1)))
    for _, npz, out in jobs:
        if Path(out) in written:  # a cached file keeps the sidecar of the run that made it
            write_sidecar(
                out, cfg, ["probe", "mcq", "models"], inputs=[npz], models=[resolve(cfg, args.model, "probe")]
            )
    print(f"{args.model}: wrote {len(written)} of {len(args.out)} features files (the rest were cached)")
