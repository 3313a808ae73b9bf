# Path helpers shared by the rules: where each kind of file lives. No computation here.
import re
import shutil
import sys
from pathlib import Path

from medbridge.config import freeze_config
from medbridge.artifacts.rq3 import model_spec, rq3_models
from medbridge.bookings import rule_resources, rule_threads  # the GPU rules' threads and resources
from medbridge.hub import dataset_repos
from medbridge.evalsets import dataset_split, evalsets_by_model, recipe_pairs, samples_per_item
from medbridge.generate.parts import generation_parts

RUN = f"results/{config['run_name']}"
CFG = f"{RUN}/config.json"  # what every verb reads; rewritten only when the config changes


# Written when a real run starts (onstart does not run in a dry run, so `-n --config ...` changes nothing).
onstart:
    freeze_config(config, CFG)


DATASETS = config["data"]["datasets"]
MODELS = config["models"]
EVAL_MODELS = config["evaluate"]["models"]
EVALSETS = evalsets_by_model(config)  # model -> the eval sets its one generate (and score) job covers
# model -> how many generate_part jobs generate its eval sets (evaluate.job_hours; src/medbridge/generate/parts.py);
# empty without job_hours: each model's one generate job generates them itself
GENERATE_PARTS = generation_parts(config)
# Under --sdm apptainer/conda a job runs the `medbridge` of its own environment, never a path of this host. Otherwise
# `medbridge` from PATH (an activated env), else the one beside this Snakemake's Python (a venv not activated).
_SDM = {m.name for m in workflow.deployment_settings.deployment_method} & {"APPTAINER", "CONDA"}
MEDBRIDGE = "medbridge" if _SDM or shutil.which("medbridge") else str(Path(sys.executable).with_name("medbridge"))


def one_of(names):
    """A wildcard constraint matching exactly `names`. With none, a pattern that matches nothing: an empty
    alternation would match every name, and hand another rule's files to this one."""
    return "|".join(map(re.escape, names)) or "(?!)"


wildcard_constraints:
    dataset=one_of(DATASETS),
    split="train|val|test",
    model="[A-Za-z0-9_.-]+",


def npz(dataset):
    size = config["data"]["size"]
    name = f"{dataset}.npz" if size == 28 else f"{dataset}_{size}.npz"
    return f"{RUN}/data/medmnist/{name}"


def npz_checked(dataset):
    """The record of the cluster job that read the npz back and checked its layout (jobs reading the npz wait)."""
    return f"{npz(dataset)}.check.json"


def items(dataset, split):
    return f"{RUN}/mcq/{dataset}/{split}.jsonl"


def model_dir(name):
    return f"{RUN}/models/{name}"


def hub_record(name):
    """What rules/download.smk fetched for a hub model role (the model itself sits in the hub cache)."""
    return f"{RUN}/hub/{name}.json"


HUB_DATASETS = dataset_repos(config)  # org--name -> {id, revision}; none without hub_cache or with fixtures


def hub_dataset_record(key):
    """What rules/download.smk fetched for a hub dataset repo (the data itself sits in the hub cache)."""
    return f"{RUN}/hub/datasets/{key}.json"


def hub_dataset_input(source):
    """The download records of the hub datasets a VQA source (a benchmark or the PMC-VQA pool) is read from."""
    return [hub_dataset_record(k) for k in dataset_repos(config, source)]


def model_input(name):
    """What a job must wait for: the model directory the DAG makes, the download of a hub model, or nothing."""
    spec = MODELS.get(name, {"source": "grpo"})
    return {"hub": [hub_record(name)], "local": []}.get(spec["source"], [model_dir(name)])


def roles_with_source(*sources):
    return [r for r, spec in MODELS.items() if spec["source"] in sources]


def log(name):
    return f"{RUN}/logs/{name}.log"


# Each rules/*.smk appends the paper artifacts (and nothing else) it makes; `rule all` asks for all of them.
TARGETS = []


def vqa_items(benchmark):
    return f"{RUN}/vqa/{benchmark}/items.jsonl"


def eval_items(evalset):
    """An eval set is a MedMNIST dataset's MCQ items on a split (src/medbridge/evalsets.py names them) or a Table 3
    benchmark (its adapted items)."""
    medmnist = dataset_split(evalset, config)
    return items(*medmnist) if medmnist else vqa_items(evalset)


def generations_dir(model):
    return f"{RUN}/generations/{model}"


def generations(model, evalset):
    return f"{generations_dir(model)}/{evalset}.jsonl"


def shards_dir(model):
    """Resumable generation shards of a model (outside its generations folder, which a rerun empties)."""
    return f"{RUN}/shards/generations/{model}"


def part_receipt(model, part):
    """The record a generate_part job leaves of the shards it made; `part`: i-of-n."""
    return f"{shards_dir(model)}/parts/{part}.json"


def part_receipts(model):
    """The receipts of every generate_part job of a model (none: the model has no parts)."""
    n = GENERATE_PARTS.get(model, 0)
    return [part_receipt(model, f"{i}-of-{n}") for i in range(1, n + 1)]


def metrics_dir(model):
    return f"{RUN}/metrics/{model}"


def metrics(model, evalset):
    return f"{metrics_dir(model)}/{evalset}.json"


def metrics_dirs(models):
    """The metrics folders of `models` (each written whole by one `score` job), without repeats."""
    return [metrics_dir(m) for m in dict.fromkeys(models)]


def bench(name):
    """Snakemake's benchmark file of a job, benchmarks/<rule>/<wildcards>.tsv (wall time, memory, I/O, CPU time),
    kept beside the run's outputs; `medbridge plan --benchmarks` reads them."""
    return f"{RUN}/benchmarks/{name}.tsv"


def artifact(name):
    return f"{RUN}/artifacts/{name}"


def train_items(task):
    """Training items of an RL/SFT task: a MedMNIST train split, or a VQA training set (e.g. the PMC-VQA subset)."""
    return items(task, "train") if task in DATASETS else f"{RUN}/vqa/{task}/train_items.jsonl"


def features_npz(model, dataset):
    return f"{RUN}/features/{model}/{dataset}.npz"


def probe_json(model, dataset):
    return f"{RUN}/probe/{model}/{dataset}.json"


def rerun_trigger(section, *ignore):
    """A config section as a rule's rerun trigger (a `rerun_trigger` param: Snakemake reruns a job whose params
    changed), minus keys that do not change that rule's outputs."""
    return {k: v for k, v in config.get(section, {}).items() if k not in ignore}


def vqa_fixture_dir(name):
    """A tiny local dataset in a VQA source's raw shape (benchmark, pmc_vqa_train, medvlthinker_eval)."""
    return f"{RUN}/vqa/fixtures/{name}"


def vqa_images(benchmark):
    return f"{RUN}/vqa/{benchmark}/images"


def vqa_skipped(benchmark):
    """Rows of a benchmark that did not become MCQ items, with reasons (and rows not drawn under max_items)."""
    return f"{RUN}/vqa/{benchmark}/skipped.json"


def pmc_labels():
    return f"{RUN}/vqa/pmc_vqa_balanced/modality_labels.jsonl"


def vqa_source_input(name):
    """The fixture folder a VQA source is read from in the tiny profile; nothing for hub sources or own paths."""
    from medbridge.data.vqa import source_entry

    vqa = config.get("vqa", {})
    local = vqa.get("source") == "fixtures" and not source_entry(config, name).get("path")
    return [vqa_fixture_dir(name)] if local else []


def source_dir_arg(wildcards, input):
    """`--source-dir <folder>` for a rule whose named input `source` is a local VQA source, else nothing."""
    return " ".join(f"--source-dir {p}" for p in input.source)


def n_samples(evalset):
    return samples_per_item(evalset, config)


# Models the training rules make (rules/train.smk): config roles with source sft/grpo, and the RQ3 grid's models
# (GRPO from each rq3.inits model on each rq3.train_tasks task: rq3-<init>-<task>, or a role that is that training).
RQ3 = config["rq3"]
RQ3_MODELS = rq3_models(config)


def trained_spec(name):
    """{source, init, task} of a model the DAG trains."""
    return model_spec(config, name)


def grpo_models():
    return list(dict.fromkeys(roles_with_source("grpo") + list(RQ3_MODELS)))
