from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--metrics", nargs="+", required=True, help="metrics/<model>/<dataset>.json files")
    p.add_argument("--out", required=True, help="recipe_decisions.csv to write")


def run(args) -> None:
    import os

    from medbridge.config import run_dir
    from medbridge.data.medmnist import MODALITY
    from medbridge.io import read_json, write_text
    from medbridge.provenance import write_sidecar
    from medbridge.recipe import decisions_frame, explain, from_metrics

    cfg = config_from(args)  # validated, recipe section included (medbridge.config.validate_config)
    recipe = cfg["recipe"]
    # sources relative to the run directory, so two runs under different names write identical tables
    from medbridge.evalsets import dataset_split

    def task(m: dict) -> str | None:  # the dataset a metrics file diagnoses (its eval set may name a split)
        where = dataset_split(m.get("evalset", ""), cfg)
        return where[0] if where else None

    diagnoses = [
        from_metrics(m, recipe.get("k"), os.path.relpath(p, run_dir(cfg)), task(m))
        for p in args.metrics
        for m in [read_json(p)]
    ]
    for d in diagnoses:
        print(explain(d, recipe["tau"]))
    frame = decisions_frame(diagnoses, recipe["tau"], MODALITY)
    write_text(args.out, frame.to_csv(index=False, float_format="%.4f"))
    write_sidecar(args.out, cfg, ["recipe", "evaluate"], inputs=args.metrics)
    print(f"wrote {args.out}: {frame.decision.value_counts().to_dict()}")
