# Section 4: the six medical VQA benchmarks of Table 3 as MCQ items, the modality-balanced PMC-VQA RL subset (the
# training set of the `ours` model), Table 3, and the boundary-aware recipe's decisions (Eq. 1).
from medbridge.config import schema_default
from medbridge.data.vqa import benchmark_names, names as vqa_source_names

VQA = config.get("vqa", {})  # no section: no Section 4 (its keys' defaults are filled in when it is there)
BENCHMARKS = benchmark_names(config)
PMC = VQA.get("pmc", {})
PMC_POOL = (PMC["train"] if PMC else schema_default("vqa.pmc.train"))["name"]


rule vqa_fixture:
    output:
        directory(vqa_fixture_dir("{vqa_source}")),
    log:
        log("vqa/fixture_{vqa_source}"),
    benchmark:
        bench("vqa_fixture/{vqa_source}")
    wildcard_constraints:
        vqa_source=one_of(vqa_source_names()),
    params:
        rerun_trigger=VQA["fixture"] if VQA else {},
    shell:
        "{MEDBRIDGE} vqa-fixture --config {CFG} --name {wildcards.vqa_source} --out {output} > {log} 2>&1"


rule vqa_items:
    input:
        source=lambda w: vqa_source_input(w.benchmark),
        hub=lambda w: hub_dataset_input(w.benchmark),  # read offline from the hub cache (rules/download.smk)
    output:
        jsonl=vqa_items("{benchmark}"),
        images=directory(vqa_images("{benchmark}")),
        skipped=vqa_skipped("{benchmark}"),
    log:
        log("vqa/items_{benchmark}"),
    benchmark:
        bench("vqa_items/{benchmark}")
    wildcard_constraints:
        benchmark=one_of(BENCHMARKS),
    params:
        rerun_trigger=lambda w: {k: VQA.get(k) for k in ("source", "max_items", "consolidated")}
        | {"entry": [b for b in VQA["benchmarks"] if b["name"] == w.benchmark]},
        src=source_dir_arg,
    shell:
        "{MEDBRIDGE} vqa-items --config {CFG} --benchmark {wildcards.benchmark} {params.src} "
        "--out {output.jsonl} > {log} 2>&1"


rule pmc_label:
    input:
        source=vqa_source_input(PMC_POOL),
        hub=hub_dataset_input(PMC_POOL),
        model=model_input(PMC["judge"]) if PMC.get("labeller") == "vlm" else [],
    output:
        labels=pmc_labels(),
        summary=f"{RUN}/vqa/pmc_vqa_balanced/modality_labels.summary.json",
    log:
        log("vqa/pmc_label"),
    benchmark:
        bench("pmc_label/pmc_label")
    threads: rule_threads("pmc_label", config)
    resources:
        **rule_resources("pmc_label", config),
    params:
        rerun_trigger={k: v for k, v in PMC.items() if k not in ("subset_size", "exclude", "shard_size")}
        | {"source": VQA.get("source")},
        src=source_dir_arg,
        shards=f"{RUN}/shards/pmc_label",  # outside the outputs, which Snakemake removes before a rerun
    shell:
        "{MEDBRIDGE} pmc-label --config {CFG} {params.src} --out {output.labels} --summary {output.summary} "
        "--shards {params.shards} > {log} 2>&1"


rule pmc_balance:
    input:
        labels=pmc_labels(),
        source=vqa_source_input(PMC_POOL),
        hub=hub_dataset_input(PMC_POOL),
    output:
        jsonl=train_items("pmc_vqa_balanced"),
        images=directory(f"{RUN}/vqa/pmc_vqa_balanced/images"),
        summary=f"{RUN}/vqa/pmc_vqa_balanced/balance.json",
    log:
        log("vqa/pmc_balance"),
    benchmark:
        bench("pmc_balance/pmc_balance")
    params:
        rerun_trigger={k: PMC.get(k) for k in ("categories", "exclude", "subset_size")},
        src=source_dir_arg,
    shell:
        "{MEDBRIDGE} pmc-balance --config {CFG} --labels {input.labels} {params.src} --out {output.jsonl} "
        "> {log} 2>&1"


rule table3:
    input:
        metrics_dirs(VQA["models"] if BENCHMARKS else []),
    output:
        csv=report(artifact("table3_vqa.csv"), category="Section 4", caption="../report/table3.rst"),
        md=report(artifact("table3_vqa.md"), category="Section 4", caption="../report/table3.rst"),
    log:
        log("artifacts/table3"),
    benchmark:
        bench("table3/table3")
    params:
        rerun_trigger={k: VQA.get(k) for k in ("models", "reported_rows")},
        metrics=[metrics(m, b) for m in (VQA["models"] if BENCHMARKS else []) for b in BENCHMARKS],
    shell:
        "{MEDBRIDGE} table3 --config {CFG} --metrics {params.metrics} --csv {output.csv} --md {output.md} > {log} 2>&1"


rule recipe:
    input:
        metrics_dirs(m for m, _ in recipe_pairs(config)),
    output:
        report(artifact("recipe_decisions.csv"), category="Section 4", caption="../report/recipe.rst"),
    log:
        log("artifacts/recipe"),
    benchmark:
        bench("recipe/recipe")
    params:
        rerun_trigger=config.get("recipe", {}),
        metrics=[metrics(m, e) for m, e in recipe_pairs(config)],
    shell:
        "{MEDBRIDGE} recipe --config {CFG} --metrics {params.metrics} --out {output} > {log} 2>&1"


TARGETS += rules.table3.output
if config.get("recipe"):
    TARGETS += rules.recipe.output
