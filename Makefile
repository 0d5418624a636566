# The two commands of the README. Everything else is a helper of these.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# A CPU build by default: it is what most annotation servers run, and it keeps pip from pulling several GB
# of CUDA libraries. GPU users: `make demo TORCH_SPEC='torch>=2.4'` (or any CUDA wheel spec).
TORCH_SPEC ?= torch==2.13.0
MODELS_DIR ?= var/models
# Options of the first run's `python -m reward bootstrap`, e.g. the longer, better bootstrap (README):
# `make demo BOOTSTRAP_ARGS='--captioner-minutes 20 --reward-minutes 12'`.
BOOTSTRAP_ARGS ?=

.PHONY: demo test lint clean-models chromium

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

# First run: trains the built-in models (cached after), seeds the demo project, then serves the app
# with a worker on the embedded broker; Ctrl+C stops both.
demo: $(VENV)/.installed
	TLDR_MODELS_DIR=$(MODELS_DIR) $(PY) -m reward bootstrap $(BOOTSTRAP_ARGS)
	$(PY) -m reward --models-dir $(MODELS_DIR) detect --shapeworld-samples 4
	$(PY) manage.py migrate --noinput
	TLDR_MODELS_DIR=$(MODELS_DIR) $(PY) manage.py seed_demo
	@echo "TLDR Annotator: http://127.0.0.1:8000/  (log in with a login printed above; Ctrl+C stops it)"
	TLDR_MODELS_DIR=$(MODELS_DIR) $(VENV)/bin/celery -A config worker -Q gpu,default -c 1 --pool solo \
		--loglevel warning & worker=$$!; trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
		TLDR_MODELS_DIR=$(MODELS_DIR) $(PY) manage.py runserver --noreload 127.0.0.1:8000

# The browser tests drive Debian's Chromium (never a browser a tool downloads by itself).
chromium:
	@command -v chromium >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get install -y -q chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium; }; \
		else echo "The browser tests need Chromium: sudo apt-get install -y chromium" >&2; fi; }

test: $(VENV)/.installed chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean-models:
	rm -rf $(MODELS_DIR)
