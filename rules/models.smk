# Models the DAG makes itself. Hub models (the paper's) need no rule: they are loaded by id and pinned revision.


rule build_tiny:
    output:
        directory(model_dir("{model}")),
    log:
        log("models/{model}"),
    benchmark:
        bench("build_tiny/{model}")
    wildcard_constraints:
        model=one_of(roles_with_source("tiny")),
    params:
        rerun_trigger=config["tiny_model"],
    shell:
        "{MEDBRIDGE} build-tiny --config {CFG} --out {output} > {log} 2>&1"
