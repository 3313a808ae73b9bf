# Audit: the paper comparison (every reproduced number beside the reported one).


rule comparison:
    input:
        probes=[probe_json(m, d) for m in EVAL_MODELS for d in DATASETS],
        metrics=[metrics(m, d) for m in EVAL_MODELS for d in DATASETS]
        + [metrics(m, b) for m in VQA.get("models", []) for b in BENCHMARKS],
    output:
        csv=report(artifact("comparison.csv"), category="Audit", caption="../report/comparison.rst"),
        md=report(artifact("comparison.md"), category="Audit", caption="../report/comparison.rst"),
    log:
        log("artifacts/comparison"),
    params:
        # the ledger columns compare these sections with the authors' values (medbridge.fidelity)
        settings={k: config.get(k) for k in ("mcq", "probe", "train", "vqa", "recipe")},
    shell:
        "{MEDBRIDGE} comparison --config {CFG} --probes {input.probes} --metrics {input.metrics} "
        "--csv {output.csv} --md {output.md} > {log} 2>&1"


TARGETS += rules.comparison.output
