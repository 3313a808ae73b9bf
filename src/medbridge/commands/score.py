from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--generations", required=True)
    p.add_argument("--items", required=True, help="the items the generations answer (for the judge's questions)")
    p.add_argument("--model", required=True)
    p.add_argument("--evalset", required=True)
    p.add_argument("--out", required=True, help="metrics JSON; judge verdicts go beside it (<out>.judge.jsonl)")


def run(args) -> None:
    from medbridge.config import config_hash
    from medbridge.io import read_jsonl, write_json, write_jsonl
    from medbridge.models.registry import resolve
    from medbridge.provenance import write_sidecar
    from medbridge.score.judge import JUDGES
    from medbridge.score.metrics import compute_metrics

    cfg = config_from(args)
    ev = cfg["evaluate"]
    rows = read_jsonl(args.generations)
    items = {it["id"]: it for it in read_jsonl(args.items)}
    verdicts = JUDGES[ev.get("judge", "rule")](rows, cfg, items)
    metrics = compute_metrics(rows, ev["k"], ev.get("bootstrap", 1000), cfg["seed"])
    metrics.update(model=args.model, evalset=args.evalset, judge=ev.get("judge", "rule"),
                   settings=rows[0]["settings"], settings_hash=config_hash(rows[0]["settings"]))  # fmt: skip
    if verdicts:
        write_jsonl(f"{args.out}.judge.jsonl", verdicts)
    write_json(args.out, metrics)
    write_sidecar(args.out, cfg, ["evaluate"], inputs=[args.generations, args.items],
                  models=[resolve(cfg, "judge")] if verdicts else [])  # fmt: skip
    print(f"{args.model} on {args.evalset}: acc1={metrics['acc1']:.3f} pass@k={metrics['pass_at_k']}")
