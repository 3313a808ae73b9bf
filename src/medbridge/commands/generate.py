from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--model", required=True, help="model role or DAG-made model name")
    p.add_argument("--items", required=True, help="MCQ items JSONL")
    p.add_argument("--out", required=True, help="generations JSONL (shards kept beside it in <out>.shards/)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--n-samples", type=int, default=None, help="samples per item (default evaluate.n_samples; 0 = greedy only)")


def run(args) -> None:
    from medbridge.data.mcq import item_data_files
    from medbridge.generate.run import run_generation
    from medbridge.models.registry import resolve
    from medbridge.provenance import write_sidecar

    cfg = config_from(args)
    device = args.device or _default_device()
    n = run_generation(cfg, args.model, args.items, args.out, device, args.n_samples)
    write_sidecar(args.out, cfg, ["evaluate"], inputs=[args.items, *item_data_files(args.items)],
                  models=[resolve(cfg, args.model)], extra={"device": device})  # fmt: skip
    print(f"wrote {n} generations to {args.out}")


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
