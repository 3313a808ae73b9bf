# Audit: the paper comparison (every reproduced number beside the reported one).


rule comparison:
    input:
        probes=[probe_json(m, d) for m in EVAL_MODELS for d in DATASETS],
        metrics=metrics_dirs(EVAL_MODELS + (VQA["models"] if BENCHMARKS else [])),
    output:
        csv=report(artifact("comparison.csv"), category="Audit", caption="../report/comparison.rst"),
        md=report(artifact("comparison.md"), category="Audit", caption="../report/comparison.rst"),
    log:
        log("artifacts/comparison"),
    benchmark:
        bench("comparison/comparison")
    params:
        # the ledger columns compare these sections with the authors' values (medbridge.fidelity)
        rerun_trigger={k: config.get(k) for k in ("mcq", "probe", "train", "vqa", "recipe")},
        metrics=[metrics(m, d) for m in EVAL_MODELS for d in DATASETS]
        + [metrics(m, b) for m in (VQA["models"] if BENCHMARKS else []) for b in BENCHMARKS],
    shell:
        "{MEDBRIDGE} comparison --config {CFG} --probes {input.probes} --metrics {params.metrics} "
        "--csv {output.csv} --md {output.md} > {log} 2>&1"


TARGETS += rules.comparison.output
