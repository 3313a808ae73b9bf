from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--npz", required=True)
    p.add_argument("--split", required=True, choices=["train", "val", "test"])
    p.add_argument(
        "--per-class",
        type=int,
        help="items per class (default: mcq.per_class, or train_per_class; neither: the smallest class's full count)",
    )
    p.add_argument("--out", required=True)


def run(args) -> None:
    from medbridge.data.mcq import make_items
    from medbridge.evalsets import eval_per_class
    from medbridge.io import write_jsonl

    cfg = config_from(args)
    mcq = cfg["mcq"]
    # no mcq.per_class: the smallest class's full count (eval), every image (train without train_per_class)
    per_class = args.per_class or (
        mcq.get("train_per_class", mcq.get("per_class")) if args.split == "train" else eval_per_class(cfg, args.split)
    )
    # Evaluation subsets are balanced as configured (the paper: equal counts); training sets keep up to per_class
    balance = "capped" if args.split == "train" else mcq["balance"]
    items = make_items(
        args.dataset,
        args.npz,
        args.split,
        per_class,
        cfg["seed"],
        mcq["option_order"],
        balance,
        mcq["retina_options"],
        mcq["chestmnist"],
    )
    n = write_jsonl(args.out, items)
    print(f"wrote {n} items to {args.out}")
