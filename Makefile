# The two commands of the README. Everything else is a helper of these.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# A CPU build by default: it is what most annotation servers run, and it keeps pip from pulling several GB
# of CUDA libraries. GPU users: `make demo TORCH_SPEC='torch>=2.4'` (or any CUDA wheel spec).
TORCH_SPEC ?= torch==2.13.0
MODELS_DIR ?= var/models

.PHONY: demo test lint clean-models

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

demo: $(VENV)/.installed
	$(PY) -m reward bootstrap --models-dir $(MODELS_DIR)
	$(PY) -m reward detect --models-dir $(MODELS_DIR) --shapeworld-samples 6

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean-models:
	rm -rf $(MODELS_DIR)
