"""Score one generations file: the judge's verdicts, the metrics JSON and its provenance."""

from __future__ import annotations


def score_file(cfg: dict, judge, model: str, evalset: str, generations: str, items_path: str, out: str) -> dict:
    from medbridge.config import config_hash
    from medbridge.io import read_jsonl, write_json, write_jsonl
    from medbridge.models.registry import resolve
    from medbridge.provenance import write_sidecar
    from medbridge.score.metrics import acc1_definition, compute_metrics

    ev = cfg["evaluate"]
    rows = read_jsonl(generations)
    items = {it["id"]: it for it in read_jsonl(items_path)}
    verdicts = judge(rows, items)
    metrics = compute_metrics(rows, ev["k"], ev["bootstrap"], cfg["seed"], acc1_definition(cfg))
    metrics.update(
        model=model,
        evalset=evalset,
        judge=judge.name,
        judge_scope=ev["judge_scope"] if judge.name == "vlm" else None,
        judge_calls=len(verdicts),
        judge_changed=sum(bool(v.get("changed")) for v in verdicts),
        settings=rows[0]["settings"],
        settings_hash=config_hash(rows[0]["settings"]),
    )
    if verdicts:
        write_jsonl(f"{out}.judge.jsonl", verdicts)
    write_json(out, metrics)
    write_sidecar(
        out, cfg, ["evaluate"], inputs=[generations, items_path], models=[resolve(cfg, "judge")] if verdicts else []
    )
    return metrics
