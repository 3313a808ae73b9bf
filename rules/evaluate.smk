# RQ2: every model answers every MCQ eval set (greedy + n samples), then Table 2 and Figure 1 from the metrics.


rule generate:
    input:
        mcq=lambda w: eval_items(w.evalset),
        model=lambda w: model_input(w.model),
    output:
        generations("{model}", "{evalset}"),
    log:
        log("generate/{model}/{evalset}"),
    params:
        settings=settings("evaluate", "models", "judge", "bootstrap", "k"),
        n_samples=lambda w: n_samples(w.evalset),
    shell:
        "{MEDBRIDGE} generate --config {CFG} --model {wildcards.model} --items {input.mcq} "
        "--n-samples {params.n_samples} --out {output} > {log} 2>&1"


rule score:
    input:
        generations=generations("{model}", "{evalset}"),
        mcq=lambda w: eval_items(w.evalset),
        judge=model_input("judge") if config["evaluate"].get("judge") == "vlm" else [],
    output:
        metrics("{model}", "{evalset}"),
    log:
        log("score/{model}/{evalset}"),
    params:
        settings=settings("evaluate", "models"),
    shell:
        "{MEDBRIDGE} score --config {CFG} --generations {input.generations} --items {input.mcq} "
        "--model {wildcards.model} --evalset {wildcards.evalset} --out {output} > {log} 2>&1"


rule table2:
    input:
        [metrics(m, d) for m in EVAL_MODELS for d in DATASETS],
    output:
        csv=report(artifact("table2_acc1.csv"), category="RQ2", caption="../report/table2.rst"),
        md=report(artifact("table2_acc1.md"), category="RQ2", caption="../report/table2.rst"),
    log:
        log("artifacts/table2"),
    shell:
        "{MEDBRIDGE} table2 --config {CFG} --metrics {input} --csv {output.csv} --md {output.md} > {log} 2>&1"


rule fig1:
    input:
        [metrics(m, d) for m in EVAL_MODELS for d in DATASETS],
    output:
        csv=report(artifact("fig1_passk.csv"), category="RQ2", caption="../report/fig1.rst"),
        png=report(artifact("fig1_passk.png"), category="RQ2", caption="../report/fig1.rst"),
    log:
        log("artifacts/fig1"),
    shell:
        "{MEDBRIDGE} fig1 --config {CFG} --metrics {input} --csv {output.csv} --png {output.png} > {log} 2>&1"


TARGETS += rules.table2.output + rules.fig1.output
