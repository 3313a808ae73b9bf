# RQ1 / Table 1: linear probes of the frozen vision towers. `features` is the GPU rule (one job per model: it loads
# the model once and embeds every dataset); `probe` fits the heads on the cached features (CPU, one job per model).

from medbridge.probe.features import augment_settings

# What the features depend on (not the probe head's settings, so changing the head never re-embeds images).
PROBE_FEATURE_SETTINGS = {
    "probe": {k: config["probe"].get(k) for k in ("features", "min_pixels", "max_pixels", "train_per_class")},
    "augment": augment_settings(config),  # the authors' transforms re-embed train images every epoch
    "test_per_class": config["mcq"].get("per_class"),
    "test_balance": config["mcq"]["balance"],
    "chestmnist": config["mcq"]["chestmnist"],
    "seed": config["seed"],
    "dtype": config["evaluate"]["dtype"],
}


rule features:
    input:
        npz=[npz(d) for d in DATASETS],
        checked=[npz_checked(d) for d in DATASETS],
        model=lambda w: model_input(w.model),
    output:
        [features_npz("{model}", d) for d in DATASETS],
    log:
        log("features/{model}"),
    benchmark:
        bench("features/{model}")
    threads: rule_threads("features", config)
    resources:
        **rule_resources("features", config),
    params:
        rerun_trigger=lambda w: {**PROBE_FEATURE_SETTINGS, "model": MODELS.get(w.model)},
        datasets=DATASETS,
    shell:
        "{MEDBRIDGE} features --config {CFG} --model {wildcards.model} --datasets {params.datasets} "
        "--npz {input.npz} --out {output} --threads {threads} > {log} 2>&1"


rule probe:
    input:
        [features_npz("{model}", d) for d in DATASETS],
    output:
        [probe_json("{model}", d) for d in DATASETS],
    log:
        log("probe/{model}"),
    benchmark:
        bench("probe/{model}")
    params:
        rerun_trigger={"probe": config["probe"], "seed": config["seed"]},
    shell:
        "{MEDBRIDGE} probe --config {CFG} --features {input} --out {output} > {log} 2>&1"


rule table1:
    input:
        [probe_json(m, d) for m in EVAL_MODELS for d in DATASETS],
    output:
        csv=report(artifact("table1_probe.csv"), category="RQ1", caption="../report/table1.rst"),
        md=report(artifact("table1_probe.md"), category="RQ1", caption="../report/table1.rst"),
    log:
        log("artifacts/table1"),
    benchmark:
        bench("table1/table1")
    params:
        rerun_trigger=MODELS,
    shell:
        "{MEDBRIDGE} table1 --config {CFG} --probes {input} --csv {output.csv} --md {output.md} > {log} 2>&1"


TARGETS += [artifact("table1_probe.csv"), artifact("table1_probe.md")]
