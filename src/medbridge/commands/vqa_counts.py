from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument(
        "--sources",
        nargs="+",
        default=["medvlthinker", "hub"],
        help="sources to count: medvlthinker (the authors'), hub (each benchmark's own dataset), fixtures",
    )
    p.add_argument("--fixtures", help="folder of VQA fixtures (tiny profile): <folder>/<source>/")
    p.add_argument("--out", required=True, help="CSV to write: one row per benchmark x source")


def run(args) -> None:
    import pandas as pd

    from medbridge.data.vqa.build import source_counts
    from medbridge.io import atomic_path

    cfg = config_from(args)
    rows = source_counts(cfg, args.sources, args.fixtures)
    df = pd.DataFrame(rows)
    with atomic_path(args.out) as tmp:
        df.to_csv(tmp, index=False)
    print(df[["benchmark", "source", "n_rows", "n_candidates", "n_items", "n_skipped"]].to_string(index=False))
