# Two commands on a fresh machine with Python >= 3.10 and pip: `make demo` and `make test`.
# Each makes the virtual environment .venv and installs what is missing.
# TORCH_SPEC is installed only when the venv has no torch; set it to the build you want
# (e.g. TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124").

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LINT_PATHS := src tests $(wildcard benchmarks)

.PHONY: demo test test-fast lint format bench clean gpu-check

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mlpmixer train

# timm is test-only (tests/checkpoints/test_timm_hub.py: timm loads our timm folders), without
# its dependencies (it would pull torchvision and another torch); the tests skip without it
TIMM_SPEC ?= timm==1.0.31

# then the fast path and the benchmarks again as an AVX2-only x86 CPU would run them (oneDNN,
# ATen and MKL capped: no AVX-512, no native bf16; docs/troubleshooting.md), and the fast-path
# tests with the fast layers switched off by default (MLPMIXER_FAST=0). Not the kernel-cache
# tests (compiler runs, ~45 s): the kernel is built for the real CPU whatever the caps say.
AVX2_CAPS := ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2
CPU_KIND_TESTS := tests/models/fast tests/bench/test_bench.py tests/bench/test_gpu_check.py \
	tests/test_cpu_kind.py tests/test_precision.py tests/test_measured_choice.py \
	--ignore=tests/models/fast/test_kernel_cache.py

test: $(STAMP)
	$(PY) -m pip install -q --no-deps $(TIMM_SPEC)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(PY) -m pytest -n 2 -q
	$(AVX2_CAPS) $(PY) -m pytest -n 2 -q -m "not slow" $(CPU_KIND_TESTS)
	MLPMIXER_FAST=0 $(PY) -m pytest -n 2 -q -m "not slow" tests/models/fast \
		--ignore=tests/models/fast/test_kernel_cache.py

# the fast tier while working: everything but the tests marked slow
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" -n 2 -q

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)

format: $(STAMP)
	$(VENV)/bin/ruff format $(LINT_PATHS)
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)

# on a machine with an NVIDIA GPU: its own venv with CUDA torch (TORCH_SPEC/TORCH_INDEX, or the
# installed one), the CUDA tests, then Mixer-B/16 bf16 vs timm with MFU -> one JSON (< 8 min)
gpu-check:
	VENV=$(VENV) PYTHON=$(PYTHON) bash benchmarks/gpu_check.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
