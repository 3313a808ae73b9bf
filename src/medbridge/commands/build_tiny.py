from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--out", required=True, help="model directory to write")


def run(args) -> None:
    from medbridge.models.tiny import build_tiny_model, tokenizer_corpus

    cfg = config_from(args)
    build_tiny_model(args.out, tokenizer_corpus(cfg["data"]["datasets"]), cfg["tiny_model"], cfg["seed"])
    print(f"wrote {args.out}")
