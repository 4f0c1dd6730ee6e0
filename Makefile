# pointsman developer targets. The default test run is .ci/run; these are the opt-in tiers.
VENV ?= .venv
PYTHON ?= $(VENV)/bin/python

.PHONY: check fmt vllm-env test-vllm

# The developer loop: ruff (lint + format check), mypy --strict, import-linter, default tests + coverage floor.
check:
	VENV=$(VENV) bash scripts/check.sh $(PYTEST_ARGS)

# Format the tree (what `check` verifies).
fmt:
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Build (once; cached under .cache/tiny-vllm/) the vLLM-on-CPU venv and the tiny model + LoRA adapters.
vllm-env:
	bash scripts/vllm_cpu.sh env

# Real vLLM tier: the session fixture in tests/vllm/conftest.py runs `vllm-env` and starts `vllm serve`.
test-vllm: vllm-env
	$(PYTHON) -m pytest -m vllm tests/vllm $(PYTEST_ARGS)
