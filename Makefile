# Quick start: `make demo` (install + run the demo) and `make test` (install + run the tests).
PYTHON ?= python3
VENV ?= .venv
# torch/torchvision are installed first so that pip resolves the project against them; override
# TORCH_SPEC to keep a torch you already have (e.g. TORCH_SPEC= make test inside a CUDA image).
TORCH_SPEC ?= torch>=2.14 torchvision>=0.29
STAMP := $(VENV)/.huale-installed
BIN := $(VENV)/bin

.PHONY: install demo test lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(strip $(TORCH_SPEC)),$(BIN)/python -m pip install --quiet $(foreach s,$(TORCH_SPEC),"$(s)"))
	$(BIN)/python -m pip install --quiet -e ".[dev,yolo]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/huale demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
