# MedMNIST files (synthetic twin in the tiny profile, the real download in the paper's) and MCQ items.
# medmnist_npz is a local rule (rules/download.smk): it only downloads and checks the MD5; reading the file back and
# checking its layout (a 224 px train split is up to 13.5 GB in memory) is medmnist_check, a cluster job.


rule medmnist_npz:
    output:
        npz("{dataset}"),
    log:
        log("data/{dataset}"),
    benchmark:
        bench("medmnist_npz/{dataset}")
    params:
        rerun_trigger=config["data"],
    shell:
        "{MEDBRIDGE} data --config {CFG} --dataset {wildcards.dataset} --out {output} > {log} 2>&1"


rule medmnist_check:
    input:
        lambda w: npz(w.dataset),
    output:
        npz_checked("{dataset}"),
    log:
        log("data/{dataset}_check"),
    benchmark:
        bench("medmnist_check/{dataset}")
    shell:
        "{MEDBRIDGE} data-check --config {CFG} --dataset {wildcards.dataset} --npz {input} --out {output} > {log} 2>&1"


rule mcq_items:
    input:
        npz=lambda w: npz(w.dataset),
        checked=lambda w: npz_checked(w.dataset),
    output:
        items("{dataset}", "{split}"),
    log:
        log("mcq/{dataset}_{split}"),
    benchmark:
        bench("mcq_items/{dataset}_{split}")
    params:
        rerun_trigger={**config["mcq"], "recipe_per_class": config.get("recipe", {}).get("per_class")},
    shell:
        "{MEDBRIDGE} items --config {CFG} --dataset {wildcards.dataset} --npz {input.npz} "
        "--split {wildcards.split} --out {output} > {log} 2>&1"


# Until the evaluation rules land, the MCQ eval items and the tiny model are what `all` makes.
TARGETS += [items(d, config["mcq"]["eval_split"]) for d in DATASETS]
TARGETS += [model_dir(m) for m, spec in MODELS.items() if spec["source"] == "tiny"]
