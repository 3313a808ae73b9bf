# Training (RQ3 and the tiny profile's sft/rl roles): the SFT bridge and GRPO-CARE, then Figure 2 from the metrics
# that rules/evaluate.smk makes for every model (generate + score accept any model name).
from medbridge.artifacts.claims import claims_inputs
from medbridge.artifacts.rq3 import rq3_inputs

TRAIN = config["train"]


rule sft_model:
    input:
        init=lambda w: model_input(trained_spec(w.model)["init"]),
        train=[train_items(d) for d in TRAIN["sft"]["datasets"]],
    output:
        directory(model_dir("{model}")),
    log:
        log("models/{model}"),
    benchmark:
        bench("sft_model/{model}")
    wildcard_constraints:
        model=one_of(roles_with_source("sft")),
    threads: rule_threads("sft_model", config)
    resources:
        **rule_resources("sft_model", config),
    params:
        rerun_trigger=lambda w: {"sft": TRAIN["sft"], "model": trained_spec(w.model)},
        init=lambda w: trained_spec(w.model)["init"],
    shell:
        "{MEDBRIDGE} sft --config {CFG} --init-model {params.init} --train-items {input.train} --out {output} "
        "> {log} 2>&1"


rule grpo_model:
    input:
        init=lambda w: model_input(trained_spec(w.model)["init"]),
        train=lambda w: train_items(trained_spec(w.model)["task"]),
    output:
        directory(model_dir("{model}")),
    log:
        log("models/{model}"),
    benchmark:
        bench("grpo_model/{model}")
    wildcard_constraints:
        model=one_of(grpo_models()),
    threads: rule_threads("grpo_model", config)
    resources:
        **rule_resources("grpo_model", config),
    params:
        rerun_trigger=lambda w: {"grpo": TRAIN["grpo"], "model": trained_spec(w.model)},
        init=lambda w: trained_spec(w.model)["init"],
    shell:
        "{MEDBRIDGE} grpo --config {CFG} --init-model {params.init} --train-items {input.train} --out {output} "
        "> {log} 2>&1"


rule fig2_rq3:
    input:
        metrics_dirs(m for m, _ in rq3_inputs(config)),
    output:
        csv=report(artifact("fig2_rq3_transfer.csv"), category="RQ3", caption="../report/fig2.rst"),
        png=report(artifact("fig2_rq3_transfer.png"), category="RQ3", caption="../report/fig2.rst"),
    log:
        log("artifacts/fig2_rq3"),
    benchmark:
        bench("fig2_rq3/fig2_rq3")
    params:
        rerun_trigger={"rq3": RQ3, "k": config["evaluate"]["k"]},
        metrics=[metrics(m, e) for m, e in rq3_inputs(config)],
    shell:
        "{MEDBRIDGE} rq3 --config {CFG} --metrics {params.metrics} --csv {output.csv} --png {output.png} > {log} 2>&1"


TARGETS += [artifact("fig2_rq3_transfer.csv"), artifact("fig2_rq3_transfer.png")]


# What the run shows: the paper's three claims about RL (support, sharpening, no gain without support), held or not.
CLAIMS = claims_inputs(config)  # empty when the grid has no in-domain pair with base and sft inits


rule claims:
    input:
        metrics=metrics_dirs(m for m, _ in CLAIMS),
        fig2=artifact("fig2_rq3_transfer.csv"),
    output:
        csv=report(artifact("claims.csv"), category="RQ3", caption="../report/claims.rst"),
        md=report(artifact("claims.md"), category="RQ3", caption="../report/claims.rst"),
    log:
        log("artifacts/claims"),
    benchmark:
        bench("claims/claims")
    params:
        rerun_trigger={"recipe": config.get("recipe"), "k": config["evaluate"]["k"]},
        metrics=[metrics(m, e) for m, e in CLAIMS],
    shell:
        "{MEDBRIDGE} claims --config {CFG} --metrics {params.metrics} --fig2 {input.fig2} --csv {output.csv} "
        "--md {output.md} > {log} 2>&1"


if CLAIMS:
    TARGETS += rules.claims.output
