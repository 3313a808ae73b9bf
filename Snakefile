# medbridge: the paper's DAG. Every rule calls one `medbridge <verb>`; the logic lives in src/medbridge/.
# Tiny profile (default, CPU, minutes):   snakemake --cores 2
# The paper on a SLURM cluster:           snakemake --profile profiles/slurm
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import min_version

from medbridge import MedbridgeError
from medbridge.config import SET_KEY, apply_set, coerce_cli_types, validate_config
from medbridge.environment import check_image_reference

min_version("9.0")


# The tiny profile is the default; a --configfile (config/paper.yaml, a user's own) replaces it instead of merging.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# One nested key from the command line: `--config set="evaluate.n_samples=4 seed=1"` (README), typed by the schema.
# `lr: 3e-5` (YAML 1.1) and nested --config values ('4') are strings to Snakemake: read as the schema's types.
# A bad key or value stops here in one line naming it (config/schema.yaml, and cross-field checks), not a traceback.
try:
    if SET_KEY in config:
        apply_set(config, config.pop(SET_KEY))
    validate_config(coerce_cli_types(config))  # the schema and every cross-field check (medbridge.config)
except MedbridgeError as e:
    first, *rest = str(e).splitlines()
    raise SystemExit(" ".join(["medbridge: config:", first, "; ".join(line.strip() for line in rest)]).strip())

# Software of every rule: under --sdm apptainer (profiles/slurm) the image named by the config (containers/); under
# --sdm conda the env envs/medbridge.yaml (set for each rule at the end of this file); otherwise the current env.
if config.get("container_image"):

    container: config["container_image"]


# The image a run starts must be exact: pinned by digest, or a local .sif (containers/README.md).
if DeploymentMethod.APPTAINER in workflow.deployment_settings.deployment_method:
    check_image_reference(config.get("container_image", ""), must_exist=False)


include: "rules/common.smk"
include: "rules/download.smk"
include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/probe.smk"
include: "rules/evaluate.smk"
include: "rules/train.smk"
include: "rules/vqa.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        TARGETS,


# A rule that names no conda env of its own gets the project's (a global `conda:` directive would instead inject
# one env into Snakemake's own process, not into each job).
for _rule in workflow.rules:
    if not (_rule.conda_env or _rule.norun):
        _rule.conda_env = f"{workflow.basedir}/envs/medbridge.yaml"
