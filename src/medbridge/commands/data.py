from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--dataset", required=True, help="MedMNIST flag, e.g. organamnist")
    p.add_argument("--out", required=True, help="the npz to write (<flag>_<size>.npz)")


def run(args) -> None:
    from pathlib import Path

    from medbridge.data import medmnist
    from medbridge.io import save_npz

    cfg = config_from(args)
    data = cfg["data"]
    if data["source"] == "synthetic":
        syn = data["synthetic"]
        sizes = {s: syn[f"n_{s}"] for s in ("train", "val", "test")}
        arrays = medmnist.make_synthetic(args.dataset, data["size"], sizes, syn["noise"], cfg["seed"])
        save_npz(args.out, **arrays)
    else:
        got = medmnist.download(args.dataset, data["size"], Path(args.out).parent)
        if got != Path(args.out):
            raise SystemExit(f"downloaded {got}, expected {args.out}")
    print(f"wrote {args.out} (`medbridge data-check` reads it back)")
