# RQ2 (and every other eval set): one `generate` job per model answers all its eval sets (greedy + n samples; one
# model load), one `score` job per model judges them (one judge load); then Table 2 and Figure 1 from the metrics.
# With evaluate.job_hours (the paper), a model's generation is split over `generate_part` jobs, one GPU each, working
# at once on every n-th shard; `generate` then only assembles their shards on a CPU.
# Each job writes one file per eval set into the model's folder: generations/<model>/<evalset>.jsonl and
# metrics/<model>/<evalset>.json (+ sidecars). Shards live outside those folders (Snakemake empties an output folder
# before it reruns a job), keyed on the model, seed and settings (src/medbridge/generate/run.py).


rule generate_part:
    input:
        evalitems=lambda w: [eval_items(e) for e in EVALSETS[w.model]],
        model=lambda w: model_input(w.model),
    output:
        part_receipt("{model}", "{part}"),
    log:
        log("generate_part/{model}/{part}"),
    benchmark:
        bench("generate_part/{model}/{part}")
    wildcard_constraints:
        model=one_of(GENERATE_PARTS),
        part=r"\d+-of-\d+",
    threads: rule_threads("generate_part", config)
    resources:
        **rule_resources("generate_part", config),
    params:
        rerun_trigger=rerun_trigger("evaluate", "models", "judge", "judge_scope", "bootstrap", "k", "acc1", "job_hours"),
        out=lambda w: [generations(w.model, e) for e in EVALSETS[w.model]],
        n_samples=lambda w: [n_samples(e) for e in EVALSETS[w.model]],
        shards=lambda w: shards_dir(w.model),
    shell:
        "{MEDBRIDGE} generate --config {CFG} --model {wildcards.model} --items {input.evalitems} "
        "--n-samples {params.n_samples} --out {params.out} --shard-dir {params.shards} --part {wildcards.part} "
        "--receipt {output} > {log} 2>&1"


rule generate:
    input:
        evalitems=lambda w: [eval_items(e) for e in EVALSETS[w.model]],
        model=lambda w: model_input(w.model),
        parts=lambda w: part_receipts(w.model),
    output:
        directory(generations_dir("{model}")),
    log:
        log("generate/{model}"),
    benchmark:
        bench("generate/{model}")
    wildcard_constraints:
        model=one_of(EVALSETS),
    threads: rule_threads("generate", config)
    resources:
        **rule_resources("generate", config),
    params:
        rerun_trigger=rerun_trigger("evaluate", "models", "judge", "judge_scope", "bootstrap", "k", "acc1", "job_hours"),
        evalsets=lambda w: EVALSETS[w.model],
        out=lambda w: [generations(w.model, e) for e in EVALSETS[w.model]],
        n_samples=lambda w: [n_samples(e) for e in EVALSETS[w.model]],
        shards=lambda w: shards_dir(w.model),
        assemble=lambda w: f"--assemble {GENERATE_PARTS[w.model]}" if w.model in GENERATE_PARTS else "",
    shell:
        "{MEDBRIDGE} generate --config {CFG} --model {wildcards.model} --items {input.evalitems} "
        "--n-samples {params.n_samples} --out {params.out} --shard-dir {params.shards} {params.assemble} "
        "> {log} 2>&1"


rule score:
    input:
        generations=generations_dir("{model}"),
        evalitems=lambda w: [eval_items(e) for e in EVALSETS[w.model]],
        judge=model_input("judge") if config["evaluate"]["judge"] == "vlm" else [],
    output:
        directory(metrics_dir("{model}")),
    log:
        log("score/{model}"),
    benchmark:
        bench("score/{model}")
    wildcard_constraints:
        model=one_of(EVALSETS),
    threads: rule_threads("score", config)
    resources:
        **rule_resources("score", config),
    params:
        rerun_trigger=rerun_trigger("evaluate", "models"),
        evalsets=lambda w: EVALSETS[w.model],
        generations=lambda w: [generations(w.model, e) for e in EVALSETS[w.model]],
        out=lambda w: [metrics(w.model, e) for e in EVALSETS[w.model]],
    shell:
        "{MEDBRIDGE} score --config {CFG} --model {wildcards.model} --generations {params.generations} "
        "--items {input.evalitems} --evalset {params.evalsets} --out {params.out} > {log} 2>&1"


rule table2:
    input:
        metrics_dirs(EVAL_MODELS),
    output:
        csv=report(artifact("table2_acc1.csv"), category="RQ2", caption="../report/table2.rst"),
        md=report(artifact("table2_acc1.md"), category="RQ2", caption="../report/table2.rst"),
    log:
        log("artifacts/table2"),
    benchmark:
        bench("table2/table2")
    params:
        metrics=[metrics(m, d) for m in EVAL_MODELS for d in DATASETS],
    shell:
        "{MEDBRIDGE} table2 --config {CFG} --metrics {params.metrics} --csv {output.csv} --md {output.md} > {log} 2>&1"


rule fig1:
    input:
        metrics_dirs(EVAL_MODELS),
    output:
        csv=report(artifact("fig1_passk.csv"), category="RQ2", caption="../report/fig1.rst"),
        png=report(artifact("fig1_passk.png"), category="RQ2", caption="../report/fig1.rst"),
    log:
        log("artifacts/fig1"),
    benchmark:
        bench("fig1/fig1")
    params:
        metrics=[metrics(m, d) for m in EVAL_MODELS for d in DATASETS],
    shell:
        "{MEDBRIDGE} fig1 --config {CFG} --metrics {params.metrics} --csv {output.csv} --png {output.png} > {log} 2>&1"


TARGETS += rules.table2.output + rules.fig1.output
