from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--labels", required=True, help="labels JSONL from pmc-label")
    p.add_argument("--source-dir", help="local copy of the PMC-VQA training pool (the fixture in the tiny profile)")
    p.add_argument("--out", required=True, help="training items JSONL; images/ and balance.json go beside it")


def run(args) -> None:
    from pathlib import Path

    from medbridge.data.pmc import build_balanced
    from medbridge.io import read_jsonl, write_json
    from medbridge.provenance import write_sidecar

    cfg = config_from(args)
    out = Path(args.out)
    summary = build_balanced(cfg, read_jsonl(args.labels), out, out.parent / "images", args.source_dir)
    write_json(out.parent / "balance.json", summary)
    write_sidecar(out, cfg, ["vqa"], inputs=[args.labels, *([args.source_dir] if args.source_dir else [])])
    print(f"wrote {summary['n_items']} balanced training items to {out}: {summary['categories']}")
