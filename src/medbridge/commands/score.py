from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--model", required=True)
    p.add_argument("--generations", required=True, nargs="+", help="generations JSONL file(s) of the model")
    p.add_argument(
        "--items",
        required=True,
        nargs="+",
        help="the items each generations file answers (the judge's questions), in the same order",
    )
    p.add_argument("--evalset", required=True, nargs="+", help="the eval set name of each generations file")
    p.add_argument(
        "--out",
        required=True,
        nargs="+",
        help="metrics JSON per generations file; judge verdicts go beside it (<out>.judge.jsonl)",
    )


def run(args) -> None:
    from medbridge import MedbridgeError
    from medbridge.score.judge import make_judge
    from medbridge.score.run import score_file

    cfg = config_from(args)
    if not len(args.generations) == len(args.items) == len(args.evalset) == len(args.out):
        raise MedbridgeError(
            "--generations, --items, --evalset and --out need one value per eval set each; got "
            f"{len(args.generations)}, {len(args.items)}, {len(args.evalset)}, {len(args.out)}"
        )
    judge = make_judge(cfg)  # one judge model load for every file of this job
    for gen, items, evalset, out in zip(args.generations, args.items, args.evalset, args.out):
        m = score_file(cfg, judge, args.model, evalset, gen, items, out)
        print(f"{args.model} on {evalset}: acc1={m['acc1']:.3f} pass@k={m['pass_at_k']}")
