"""`medbridge diagnose`: Support@K, Acc@1 and gap (Eq. 1) for any model and MCQ item set -> bridge or sharpen."""


def add_arguments(p) -> None:
    p.epilog = (
        'For your own MCQ JSONL (items with images [{"path": ...}]), make generations first: medbridge '
        "generate --config <cfg> --model <role> --items mine.jsonl --out gen.jsonl; then diagnose "
        "--generations gen.jsonl --items mine.jsonl --tau 0.5"
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--metrics", nargs="+", help="metrics JSON(s) from `medbridge score`, one per task")
    src.add_argument("--generations", nargs="+", help="generations JSONL(s) (greedy + samples), one per task")
    p.add_argument(
        "--items",
        nargs="+",
        help="with --generations: the item set(s) to recount correctness against "
        "(e.g. your own MCQ JSONL), one per generations file",
    )
    p.add_argument("--config", help="a run config: recipe.tau and recipe.k become the defaults")
    p.add_argument("--tau", type=float, help="target threshold in [0, 1] on Support@K")
    p.add_argument("--k", type=int, help="K of Support@K (default: recipe.k, else the largest available)")
    p.add_argument("--task", nargs="+", help="task names to print (default: from the files)")
    p.add_argument("--model", help="model name to print (generations files do not name it)")
    p.add_argument(
        "--acc1",
        choices=["sampled", "greedy"],
        help="with --generations: Acc@1 as the mean accuracy of the samples (the paper's Table 2 numbers) "
        "or the greedy answer's (default: evaluate.acc1 of --config, else sampled)",
    )
    p.add_argument("--out", help="also write the decisions as CSV")


def run(args) -> None:
    from medbridge import MedbridgeError
    from medbridge.io import read_json, read_jsonl, write_text
    from medbridge.recipe import check_tau, decisions_frame, explain, from_generations, from_metrics

    recipe, acc1 = {}, "sampled"
    if args.config:
        from medbridge.config import load_config

        cfg = load_config(args.config)
        recipe, acc1 = cfg.get("recipe", {}), cfg["evaluate"]["acc1"]
    acc1 = args.acc1 or acc1
    tau = args.tau if args.tau is not None else recipe.get("tau")
    if tau is None:
        raise MedbridgeError("give --tau (a fraction in [0, 1]) or a --config whose recipe.tau sets it")
    tau = check_tau(tau)
    k = args.k if args.k is not None else recipe.get("k")
    paths = args.metrics or args.generations
    tasks = args.task or [None] * len(paths)
    if len(tasks) != len(paths):
        raise MedbridgeError(f"--task names {len(tasks)} tasks for {len(paths)} files; give one name per file")
    if args.items and (args.metrics or len(args.items) != len(paths)):
        raise MedbridgeError("--items goes with --generations, one item set per generations file")
    diagnoses = []
    for i, (path, task) in enumerate(zip(paths, tasks)):
        if args.metrics:
            d = from_metrics(read_json(path), k, path, task)
        else:
            items = read_jsonl(args.items[i]) if args.items else None
            d = from_generations(read_jsonl(path), k, path, task, items, args.model, acc1)
        diagnoses.append(d)
        print(explain(d, tau))
    if args.out:
        write_text(args.out, decisions_frame(diagnoses, tau).to_csv(index=False, float_format="%.4f"))
        print(f"wrote {args.out}")
