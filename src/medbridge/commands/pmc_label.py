from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--source-dir", help="local copy of the PMC-VQA training pool (the fixture in the tiny profile)")
    p.add_argument("--out", required=True, help="labels JSONL to write (one row per labelled question)")
    p.add_argument("--summary", required=True, help="JSON summary to write (counts per modality, skipped rows)")
    p.add_argument("--shards", help="folder of resumable label shards (kept across attempts; the VLM labeller)")


def run(args) -> None:
    from medbridge.data.pmc import label_pool
    from medbridge.io import write_json, write_jsonl
    from medbridge.models.registry import resolve
    from medbridge.provenance import write_sidecar

    cfg = config_from(args)
    rows, summary = label_pool(cfg, args.source_dir, args.shards)
    write_json(args.summary, summary)
    write_jsonl(args.out, rows)
    pmc = cfg["vqa"]["pmc"]
    judge = [resolve(cfg, pmc["judge"])] if pmc["labeller"] == "vlm" else []
    write_sidecar(
        args.out,
        cfg,
        ["vqa"],
        inputs=[args.source_dir] if args.source_dir else [],
        models=judge,
        extra={"source": summary["source"]},
    )
    print(
        f"labelled {len(rows)} questions with {summary['labeller']}: {summary['counts']} "
        f"({summary['n_unparsed']} answers named no category)"
    )
