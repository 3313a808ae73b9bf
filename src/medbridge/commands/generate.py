from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--model", required=True, help="model role or DAG-made model name")
    p.add_argument("--items", required=True, nargs="+", help="item JSONL file(s), one per eval set")
    p.add_argument("--out", required=True, nargs="+", help="generations JSONL file(s), one per --items file")
    p.add_argument("--n-samples", type=int, nargs="+", default=None,
                   help="samples per item, one value for all eval sets or one per --items file "
                        "(default evaluate.n_samples; 0 = greedy only)")  # fmt: skip
    p.add_argument("--shard-dir", default=None,
                   help="folder for the resumable shards (<shard-dir>/<eval set>/); default <out>.shards/")  # fmt: skip
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")


def run(args) -> None:
    from medbridge import MedbridgeError
    from medbridge.data.mcq import item_data_files
    from medbridge.generate import default_device
    from medbridge.generate.run import EvalJob, run_generation, seeding
    from medbridge.models.registry import resolve
    from medbridge.provenance import write_sidecar

    cfg = config_from(args)
    n = args.n_samples or [None]
    if len(args.out) != len(args.items) or len(n) not in (1, len(args.items)):
        raise MedbridgeError(f"--items has {len(args.items)} files, --out {len(args.out)} and --n-samples {len(n)} "
                             "values; give one --out per --items file and one --n-samples value or one per file")  # fmt: skip
    n = n * len(args.items) if len(n) == 1 else n
    jobs = [EvalJob(i, o, k) for i, o, k in zip(args.items, args.out, n)]
    device = args.device or default_device()
    written = run_generation(cfg, args.model, jobs, device, args.shard_dir)
    for job in jobs:
        write_sidecar(job.out, cfg, ["evaluate"], inputs=[job.items, *item_data_files(job.items)],
                      models=[resolve(cfg, args.model)],
                      extra={"device": device, "backend": cfg["evaluate"]["backend"], "seeding": seeding(cfg, device)})  # fmt: skip
        print(f"wrote {written[job.out]} generations to {job.out}")
