# Two commands on a fresh machine: `make report` and `make test`. Both set up .venv first.
PYTHON ?= python3
TORCH ?= torch==2.13.0
CONFIG ?= configs/quick.yaml
VENV := .venv
PY := $(VENV)/bin/python
# The stamp is keyed on the dependency files and the torch requirement: a second
# `make setup` with nothing changed does nothing.
STAMP := $(VENV)/.setup-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)-$(shell echo '$(TORCH)' | sha1sum | cut -c1-8)

.PHONY: setup test report bench lint clean

setup: $(STAMP)

$(STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)" -e ".[dev]"
	@rm -f $(VENV)/.setup-*
	@touch $@
	@echo "setup done: $(VENV)"

test: setup
	$(PY) -m ruff check srlib tests benchmarks notebooks
	$(PY) -m pytest

report: setup
	@echo "make report: the report is not built yet (the notebooks and runner land with the report issue)."

bench: setup
	$(PY) benchmarks/resize.py

lint: setup
	$(PY) -m ruff check srlib tests benchmarks notebooks

clean:
	rm -rf reports/runs reports/*.html reports/*.csv .pytest_cache
