# Two commands on a fresh machine: `make report` and `make test`. Both set up .venv first.
PYTHON ?= python3
TORCH ?= torch==2.13.0
CONFIG ?= configs/quick.yaml
# LPIPS weights only: both packages import torchvision, so they are installed without
# their dependencies and never imported (srlib.lpips reads their weight files).
WEIGHT_PACKAGES := lpips==0.1.4 stlpips-pytorch==0.0.2
VENV := .venv
PY := $(VENV)/bin/python
# The stamp is keyed on the dependency files and the torch requirement: a second
# `make setup` with nothing changed does nothing.
STAMP := $(VENV)/.setup-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)-$(shell echo '$(TORCH)' | sha1sum | cut -c1-8)

.PHONY: setup test report study lab bench lint clean lpips-reference

setup: $(STAMP)

$(STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)" -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps $(WEIGHT_PACKAGES)
	@rm -f $(VENV)/.setup-*
	@touch $@
	@echo "setup done: $(VENV)"

test: lint
	$(PY) -m pytest

report: setup
	$(PY) -m srlib.ablate $(CONFIG)

# The study (configs/study.yaml): train on Sun80, test on Set5, Set14, BSD68; 2 h 9 min
# on a 2-core CPU. SRLIB_DATA must name the folder holding those sets. Its page, tables
# and provenance under reports/study/ are committed (the runs are not). STUDY_GRID runs
# another grid into the same folder (a new edition's, before it replaces study.yaml).
STUDY_GRID ?= configs/study.yaml
study: setup
	@test -n "$$SRLIB_DATA" || { echo "make study: set SRLIB_DATA to the folder holding Sun80, Set5, Set14 and BSD68"; exit 2; }
	$(PY) -m srlib.ablate $(STUDY_GRID) --out reports/study
	@du -h reports/study/index.html
	@test $$(stat -c %s reports/study/index.html) -le 6291456 || { echo "reports/study/index.html is over 6 MB: lower the figures' dpi"; exit 1; }

# JupyterLab with jupytext: notebooks/*.py open as notebooks (double-click). As root (a
# container, an SR box) Jupyter refuses to start without --allow-root: added then. More
# options: make lab LAB_ARGS="--no-browser --port 8889"
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings
LAB_ARGS ?=
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root,)
lab: setup
	@mkdir -p $(LAB_SETTINGS)
	@echo '{"@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"python": "Jupytext Notebook"}}}' > $(LAB_SETTINGS)/overrides.json
	$(VENV)/bin/jupyter lab notebooks $(ROOT_ARGS) $(LAB_ARGS)

bench: setup
	$(PY) benchmarks/resize_speed.py
	$(PY) benchmarks/lpips_speed.py

# The LPIPS reference comparison: the reference packages need torchvision, which does
# not import beside our torch, so they get an environment of their own (several GB).
REF_VENV := .venv-ref
lpips-reference:
	@test -x $(REF_VENV)/bin/python || $(PYTHON) -m venv $(REF_VENV)
	$(REF_VENV)/bin/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1 \
	  $(WEIGHT_PACKAGES) torchsummary ipython pytest scikit-image imageio tifffile pillow
	PYTHONPATH=. $(REF_VENV)/bin/python -m pytest -p no:cacheprovider -rs tests/test_lpips.py

# ruff's rules (pyproject.toml) include complexity, unused arguments and simplifications
lint: setup
	$(PY) -m ruff check srlib tests benchmarks notebooks

clean:
	rm -rf reports/runs reports/*.html reports/*.csv reports/*.json reports/*.ipynb .pytest_cache
