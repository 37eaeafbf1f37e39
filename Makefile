# Quick start: `make demo` (install + run the demo) and `make test` (install + run the tests).
PYTHON ?= python3
VENV ?= .venv
# torch/torchvision are installed first so that pip resolves the project against them; override
# TORCH_SPEC to keep a torch you already have (e.g. TORCH_SPEC= make test inside a CUDA image).
TORCH_SPEC ?= torch>=2.14 torchvision>=0.29
# Exact releases for the torch step (see the file); TORCH_CONSTRAINTS= lets pip choose.
TORCH_CONSTRAINTS ?= constraints/torch-stack.txt
# Optional extras installed for the tests and the demo (yolo: Ultralytics, AGPL, optional).
EXTRAS ?= dev,yolo
STAMP := $(VENV)/.huale-installed
BIN := $(VENV)/bin
# pip with patience for flaky networks: retries per request, resumed downloads, and the whole
# command tried up to 3 times (a download that stalls 6 times in a row fails one attempt only).
PIP := $(BIN)/python -m pip install --quiet --retries 10 --resume-retries 10
retry3 = for attempt in 1 2 3; do $(1) && break; if [ $$attempt = 3 ]; then exit 1; fi; \
	echo "make: pip failed (attempt $$attempt of 3); retrying in 10 s" >&2; sleep 10; done

.PHONY: install demo test lint clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints/torch-stack.txt
	$(PYTHON) -m venv $(VENV)
	$(call retry3,$(BIN)/python -m pip install --quiet --retries 10 --upgrade pip)
	$(if $(strip $(TORCH_SPEC)),$(call retry3,$(PIP) $(if $(strip $(TORCH_CONSTRAINTS)),-c $(TORCH_CONSTRAINTS)) $(foreach s,$(TORCH_SPEC),"$(s)")))
	$(call retry3,$(PIP) -e ".[$(EXTRAS)]")
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/huale demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
