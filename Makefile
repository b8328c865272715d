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

.PHONY: demo test test-fast lint format bench clean

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

test: $(STAMP)
	$(PY) -m pip install -q --no-deps $(TIMM_SPEC)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(PY) -m pytest -n 2 -q

# the fast tier while working: everything but the tests marked slow
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" -n 2 -q

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)

format: $(STAMP)
	$(VENV)/bin/ruff format $(LINT_PATHS)
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
