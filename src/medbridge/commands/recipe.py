from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--metrics", nargs="+", required=True, help="metrics/<model>/<dataset>.json files")
    p.add_argument("--out", required=True, help="recipe_decisions.csv to write")


def run(args) -> None:
    from medbridge.data.medmnist import MODALITY
    from medbridge.io import read_json, write_text
    from medbridge.provenance import write_sidecar
    from medbridge.recipe import check_recipe_config, decisions_frame, explain, from_metrics

    cfg = config_from(args)
    check_recipe_config(cfg)
    recipe = cfg["recipe"]
    diagnoses = [from_metrics(read_json(p), recipe.get("k"), p) for p in args.metrics]
    for d in diagnoses:
        print(explain(d, recipe["tau"]))
    frame = decisions_frame(diagnoses, recipe["tau"], MODALITY)
    write_text(args.out, frame.to_csv(index=False, float_format="%.4f"))
    write_sidecar(args.out, cfg, ["recipe", "evaluate"], inputs=args.metrics)
    print(f"wrote {args.out}: {frame.decision.value_counts().to_dict()}")
