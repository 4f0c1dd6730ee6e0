# pointsman developer targets. The default test run is .ci/run; these are the opt-in tiers.
PYTHON ?= .venv/bin/python

.PHONY: vllm-env test-vllm

# Build (once; cached under .cache/tiny-vllm/) the vLLM-on-CPU venv and the tiny model + LoRA adapters.
vllm-env:
	bash scripts/vllm_cpu.sh env

# Real vLLM tier: the session fixture in tests/vllm/conftest.py runs `vllm-env` and starts `vllm serve`.
test-vllm: vllm-env
	$(PYTHON) -m pytest -m vllm tests/vllm $(PYTEST_ARGS)
