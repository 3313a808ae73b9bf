"""Trace a reported number back to the answers that produced it, and recompute it from the raw texts.

artifact cell -> the metrics file it was read from (checked against the artifact's provenance) -> the generations
file (checked against the metrics' provenance: a hand-edited file is flagged) -> every sampled text re-extracted and
re-scored here, ignoring the stored choices -> Acc@1 and Pass@k recomputed and compared with the metrics and the cell;
plus the prompts (hash recomputed from the items), the model (id, revision, weights hash) and data files behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from medbridge import MedbridgeError
from medbridge.generate.chat import prompt_hash
from medbridge.io import read_json, read_jsonl, sha256_file
from medbridge.prompts import prompt_text
from medbridge.provenance import read_sidecar, sidecar_path
from medbridge.score.extract import extract_choice
from medbridge.score.metrics import compute_metrics

# artifact -> (column holding the model, column holding the eval set, column holding the value in percent)
METRIC_TABLES = {"table2_acc1.csv": ("model", "dataset", "acc1")}


@dataclass
class AuditReport:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def ok(self, msg: str) -> None:
        self.lines.append(f"  ok    {msg}")

    def bad(self, msg: str) -> None:
        self.lines.append(f"  FAIL  {msg}")
        self.problems.append(msg)

    def info(self, msg: str) -> None:
        self.lines.append(f"        {msg}")

    def text(self) -> str:
        verdict = "MATCHES" if not self.problems else f"DOES NOT MATCH ({len(self.problems)} problem(s))"
        return "\n".join([*self.lines, f"verdict: {verdict}"])


def _check_hash(report: AuditReport, path: str, recorded: dict | None, what: str) -> None:
    if recorded is None:
        report.bad(f"{what} {path} is not among the recorded inputs (no provenance for it)")
    elif not Path(path).exists():
        report.bad(f"{what} {path} is missing")
    elif sha256_file(path) != recorded["sha256"]:
        report.bad(f"{what} {path} changed after it was used (sha256 differs from its provenance): hand-edited?")
    else:
        report.ok(f"{what} {path} is the file that was used (sha256 {recorded['sha256'][:12]})")


def _recorded(sidecar: dict, path: str) -> dict | None:
    return next((i for i in sidecar.get("inputs", []) if Path(i["path"]) == Path(path)), None)


def audit_generations(gen_path: str, metrics: dict, report: AuditReport, items_path: str | None = None) -> None:
    rows = read_jsonl(gen_path)
    changed = 0
    for r in rows:
        letters = list(r["options"])
        for s in [r["greedy"], *r["samples"]]:
            choice, _ = extract_choice(s["text"], letters, r.get("answer_tag", "first"))
            if s.get("method") == "judge":  # the judge's verdict is kept; its record sits beside the metrics
                choice = s["choice"]
            if choice != s["choice"] or (choice == r["answer"]) != s["correct"]:
                changed += 1
            s["choice"], s["correct"] = choice, choice == r["answer"]
    if changed:
        report.bad(f"{changed} stored choice(s)/correctness flag(s) disagree with re-extraction from the raw texts")
    else:
        report.ok(f"all {len(rows)} items' stored choices agree with re-extraction from the raw texts")
    ks = [int(k) for k in metrics["pass_at_k"]]
    again = compute_metrics(rows, ks, n_boot=0, seed=0, acc1=metrics.get("acc1_definition", "greedy"))
    for name, ours, theirs in [("acc1", again["acc1"], metrics["acc1"])] + [
        (f"pass@{k}", again["pass_at_k"][str(k)], metrics["pass_at_k"][str(k)]) for k in ks
    ]:
        (report.ok if abs(ours - theirs) < 1e-9 else report.bad)(
            f"{name}: recomputed {ours:.6f} vs metrics file {theirs:.6f}"
        )
    if items_path and not Path(items_path).exists():  # a deleted item set must not skip the prompt check silently
        report.bad(f"item set {items_path} is missing: prompt hashes cannot be recomputed")
    elif items_path:
        items = {it["id"]: it for it in read_jsonl(items_path)}
        bad = [
            r["id"]
            for r in rows
            if r["id"] not in items
            or prompt_hash(prompt_text(items[r["id"]], r["settings"]["prompt"])) != r["prompt_hash"]
        ]
        (report.bad if bad else report.ok)(
            f"prompt hashes recomputed from {items_path}: {len(bad)} mismatch(es)"
            if bad
            else f"prompt hashes of all {len(rows)} items recomputed from {items_path}"
        )


def audit_metrics(metrics_path: str, report: AuditReport) -> dict:
    metrics = read_json(metrics_path)
    report.info(
        f"metrics {metrics_path}: model {metrics['model']}, eval set {metrics['evalset']}, "
        f"{metrics['n_items']} items x {metrics['n_samples']} samples"
    )
    if not sidecar_path(metrics_path).exists():
        report.bad(f"{metrics_path} has no provenance sidecar")
        return metrics
    side = read_sidecar(metrics_path)
    gen = next(i["path"] for i in side["inputs"] if i["path"].endswith(".jsonl") and "/generations/" in i["path"])
    items_path = next((i["path"] for i in side["inputs"] if i["path"] != gen), None)
    _check_hash(report, gen, _recorded(side, gen), "generations")
    if sidecar_path(gen).exists():
        gside = read_sidecar(gen)
        for m in gside.get("models", []):
            report.info(
                f"model {m['name']}: {m['path']} revision {m.get('revision')} "
                f"weights sha256 {str(m.get('weights_sha256'))[:16]}"
            )
        for i in gside.get("inputs", []):
            report.info(f"data {i['path']} sha256 {i['sha256'][:16]}")
        report.info(
            f"generated at git {str(gside['git']['commit'])[:12]} (dirty={gside['git']['dirty']}) "
            f"on {gside['host']}, {gside['started']}"
        )
    audit_generations(gen, metrics, report, items_path)
    return metrics


def audit_cell(artifact_path: str, model: str, column: str, report: AuditReport) -> None:
    name = Path(artifact_path).name
    if name not in METRIC_TABLES:
        raise MedbridgeError(f"audit traces cells of {sorted(METRIC_TABLES)}; for another file pass its metrics JSON")
    mcol, ecol, vcol = METRIC_TABLES[name]
    df = pd.read_csv(artifact_path)
    cell = df[(df[mcol] == model) & (df[ecol] == column)]
    if cell.empty:
        raise MedbridgeError(
            f"{artifact_path} has no cell ({model}, {column}); models: {sorted(df[mcol].unique())}, "
            f"columns: {sorted(df[ecol].unique())}"
        )
    value = float(cell[vcol].iloc[0])
    report.info(f"{name} cell ({model}, {column}) = {value:.4f}%")
    side = read_sidecar(artifact_path)
    metrics_path = next(
        (i["path"] for i in side["inputs"] if Path(i["path"]).parts[-2:] == (model, f"{column}.json")), None
    )
    if metrics_path is None:
        raise MedbridgeError(f"the provenance of {artifact_path} names no metrics file for ({model}, {column})")
    _check_hash(report, metrics_path, _recorded(side, metrics_path), "metrics")
    metrics = audit_metrics(metrics_path, report)
    (report.ok if abs(100 * metrics["acc1"] - value) < 5e-3 else report.bad)(
        f"cell {value:.4f}% vs metrics acc1 {100 * metrics['acc1']:.4f}%"
    )
