from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--benchmark", required=True, help="a vqa.benchmarks name, e.g. pmc_vqa")
    p.add_argument("--source-dir", help="local copy of the source (the fixture folder in the tiny profile)")
    p.add_argument("--out", required=True, help="items JSONL to write; images/ and skipped.json go beside it")


def run(args) -> None:
    from pathlib import Path

    from medbridge.data.vqa.build import build_items
    from medbridge.provenance import write_sidecar

    cfg = config_from(args)
    out = Path(args.out)
    s = build_items(cfg, args.benchmark, out, out.parent / "images", out.parent / "skipped.json", args.source_dir)
    write_sidecar(out, cfg, ["vqa"], inputs=[args.source_dir] if args.source_dir else [], extra={"source": s["source"]})
    print(
        f"{args.benchmark}: {s['n_items']} items from {s['n_rows']} rows of {s['source']} "
        f"({s['n_skipped']} skipped, {s['n_not_drawn']} not drawn; see {out.parent / 'skipped.json'})"
    )
