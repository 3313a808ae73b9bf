# MedMNIST files (synthetic twin in the tiny profile, the real download in the paper's) and MCQ items.


rule medmnist_npz:
    output:
        npz("{dataset}"),
    params:
        settings=config["data"],
    log:
        log("data/{dataset}"),
    shell:
        "{MEDBRIDGE} data --config {CFG} --dataset {wildcards.dataset} --out {output} > {log} 2>&1"


rule mcq_items:
    input:
        lambda w: npz(w.dataset),
    output:
        items("{dataset}", "{split}"),
    params:
        settings=config["mcq"],
    log:
        log("mcq/{dataset}_{split}"),
    shell:
        "{MEDBRIDGE} items --config {CFG} --dataset {wildcards.dataset} --npz {input} "
        "--split {wildcards.split} --out {output} > {log} 2>&1"
