# Downloads run once, on the login node (local rules; compute nodes need no network): every hub model role and every
# hub dataset the config reads into the configured hub cache (`hub_cache`), which the jobs then read offline; the
# MedMNIST+ files. Local rules only download and checksum (the profile caps how many run at once: local-cores).
from pathlib import Path

HUB_CACHE = config.get("hub_cache")


localrules:
    download_model,
    download_dataset,
    medmnist_npz,


# A cache outside the checkout is bound into every container (the checkout, the jobs' working directory, already is).
if HUB_CACHE and Path(HUB_CACHE).is_absolute():
    _bind = f"--bind {HUB_CACHE}"
    if _bind not in workflow.deployment_settings.apptainer_args:
        workflow.deployment_settings.apptainer_args += f" {_bind}"


rule download_model:
    output:
        hub_record("{model}"),
    log:
        log("hub/{model}"),
    benchmark:
        bench("download_model/{model}")
    wildcard_constraints:
        model=one_of(roles_with_source("hub")),
    params:
        rerun_trigger=lambda w: {"model": MODELS[w.model], "hub_cache": HUB_CACHE},
    shell:
        "{MEDBRIDGE} download-model --config {CFG} --model {wildcards.model} --out {output} > {log} 2>&1"


rule download_dataset:
    output:
        hub_dataset_record("{repo}"),
    log:
        log("hub/datasets/{repo}"),
    benchmark:
        bench("download_dataset/{repo}")
    wildcard_constraints:
        repo=one_of(HUB_DATASETS),
    params:
        rerun_trigger=lambda w: {"dataset": HUB_DATASETS[w.repo], "hub_cache": HUB_CACHE},
    shell:
        "{MEDBRIDGE} download-dataset --config {CFG} --repo {wildcards.repo} --out {output} > {log} 2>&1"
