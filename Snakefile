# medbridge: the paper's DAG. Every rule calls one `medbridge <verb>`; the logic lives in src/medbridge/.
# Tiny profile (default, CPU, minutes):   snakemake --cores 2
# The paper on a SLURM cluster:           snakemake --profile profiles/slurm
from snakemake.utils import min_version, validate

min_version("9.0")


# The tiny profile is the default; a --configfile (config/paper.yaml, a user's own) replaces it instead of merging.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "config/schema.yaml")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/models.smk"
#include: "rules/probe.smk"
include: "rules/evaluate.smk"


rule all:
    input:
        TARGETS,
    default_target: True
