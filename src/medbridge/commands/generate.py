from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--model", required=True, help="model role or DAG-made model name")
    p.add_argument("--items", required=True, nargs="+", help="item JSONL file(s), one per eval set")
    p.add_argument("--out", required=True, nargs="+", help="generations JSONL file(s), one per --items file")
    p.add_argument(
        "--n-samples",
        type=int,
        nargs="+",
        default=None,
        help="samples per item, one value for all eval sets or one per --items file "
        "(default evaluate.n_samples; 0 = greedy only)",
    )
    p.add_argument(
        "--shard-dir",
        default=None,
        help="folder for the resumable shards (<shard-dir>/<eval set>/); default <out>.shards/",
    )
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    split = p.add_mutually_exclusive_group()
    split.add_argument(
        "--part",
        default=None,
        metavar="I-of-N",
        help="generate only part I of N of the shards (one of N jobs working at once) and write "
        "--receipt; the generations files are written by --assemble afterwards",
    )
    split.add_argument(
        "--assemble",
        type=int,
        default=None,
        metavar="N",
        help="generate nothing: write the generations files from the shards the N part jobs made "
        "(an error names any shard missing)",
    )
    p.add_argument("--receipt", default=None, help="with --part: JSON file listing the part's shards (rows, sha256)")


def run(args) -> None:
    from medbridge import MedbridgeError
    from medbridge.data.mcq import item_data_files
    from medbridge.generate import default_device
    from medbridge.generate.run import EvalJob, Part, assemble, generate_shards, run_generation, seeding, shard_device
    from medbridge.io import sha256_file, write_json
    from medbridge.models.registry import resolve
    from medbridge.provenance import write_sidecar

    cfg = config_from(args)
    n = args.n_samples or [None]
    if len(args.out) != len(args.items) or len(n) not in (1, len(args.items)):
        raise MedbridgeError(
            f"--items has {len(args.items)} files, --out {len(args.out)} and --n-samples {len(n)} "
            "values; give one --out per --items file and one --n-samples value or one per file"
        )
    n = n * len(args.items) if len(n) == 1 else n
    jobs = [EvalJob(i, o, k) for i, o, k in zip(args.items, args.out, n)]
    if args.part:
        part = Part.parse(args.part)
        if not args.receipt:
            raise MedbridgeError("--part needs --receipt FILE: the part's record of the shards it made")
        shards = generate_shards(cfg, args.model, jobs, args.device or default_device(), args.shard_dir, part)
        write_json(
            args.receipt,
            {
                "model": args.model,
                "part": str(part),
                "shards": [{"path": str(s.path), "rows": len(s.items), "sha256": sha256_file(s.path)} for s in shards],
            },
        )
        print(f"part {part}: {len(shards)} shards of {args.model} done; listed in {args.receipt}")
        return
    if args.assemble:
        device = shard_device(cfg, args.model, jobs, args.shard_dir)
        written = assemble(cfg, args.model, jobs, args.shard_dir, device, args.assemble)
    else:
        device = args.device or default_device()
        written = run_generation(cfg, args.model, jobs, device, args.shard_dir)
    for job in jobs:
        write_sidecar(
            job.out,
            cfg,
            ["evaluate"],
            inputs=[job.items, *item_data_files(job.items)],
            models=[resolve(cfg, args.model)],
            extra={"device": device, "backend": cfg["evaluate"]["backend"], "seeding": seeding(cfg, device)},
        )
        print(f"wrote {written[job.out]} generations to {job.out}")
