# uplr — `make help` lists the targets. Everything runs inside .venv, built from requirements.lock and
# requirements-dev.lock.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.uplr-setup
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# one id shared by every stage of one pipeline run (an MLflow tag); override to group runs yourself
export UPLR_PIPELINE_RUN ?= $(shell date -u +%Y%m%dT%H%M%SZ)-$(shell od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
PYTEST_ARGS ?=
# the local MLflow store: every stage and `uplr tables` use it (also from the temporary copy `make demo` runs in)
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db

.PHONY: help setup lock demo ablation variants test tables ui lint clean
-include mk/*.mk

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock \
	  -r requirements-dev.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

setup: $(STAMP) ## create .venv from the hash-pinned locks (runtime + dev) and install uplr (idempotent)

# Two locks from one resolution: requirements.lock (runtime: what the stages import; the container image
# installs only this) and requirements-dev.lock (DVC, test and lint tools), compiled with the runtime
# lock as constraints and listing only what the runtime lock does not. uv prefers the versions already
# in the output files; LOCK_ARGS=--upgrade (or --upgrade-package NAME) moves them.
# The package index is PyPI unless the environment says otherwise: uv reads UV_INDEX_URL,
# UV_EXTRA_INDEX_URL (and UV_INDEX_STRATEGY) itself, so a site mirror or proxy is set there, never here.
LOCK_ARGS ?=
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --generate-hashes --override requirements-overrides.txt \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --custom-compile-command 'make lock' $(LOCK_ARGS)
lock: setup ## regenerate requirements.lock + requirements-dev.lock (hash-pinned) from requirements*.in
	$(UV_COMPILE) requirements.in -o requirements.lock
	$(UV_COMPILE) requirements-dev.in -c requirements.lock -o requirements-dev.lock \
	  $$(sed -n 's/^\([A-Za-z0-9._-]*\)==.*/--no-emit-package \1/p' requirements.lock)

DEMO_STAGES := evaluate_source_only@0 evaluate_oracle@0
# the evaluation stages of Table 3's rows + the oracle, and of the variants and controls (uplr/experiments.py)
ABLATION_STAGES = $(shell $(VENV)/bin/python -m uplr.experiments stages table3 oracle) pseudo_quality
VARIANT_STAGES = $(shell $(VENV)/bin/python -m uplr.experiments stages variants)

# The demo runs as a DVC experiment in a temporary copy (dvc exp run --temp): the workspace, dvc.lock and the
# published reports/ stay as they are (git status stays clean); the runs go to MLflow, the outputs to DVC's
# cache and the experiment to `dvc exp show`; its tables go to reports/demo/ (ignored by git).
demo: setup ## embedded benchmark: generate, train source-only + oracle, evaluate, print the tables (reports/demo/)
	dvc exp run --temp $(DEMO_STAGES)
	uplr tables --out reports/demo

# SEEDS='[0]' runs another seed grid than params.yaml's five (dvc exp run -S, recorded as a DVC experiment)
SEEDS ?=
# run these DVC stages for the seeds in params.yaml, or SEEDS as a DVC experiment; then print the tables
define repro_seeds
$(if $(strip $(SEEDS)),dvc exp run -S 'seeds=$(SEEDS)' $(1),dvc repro $(1))
uplr tables --out reports/latest
endef

ablation: setup ## Table 3 on the embedded benchmark: its rows + the oracle for the seeds in params.yaml (5); tables in reports/latest
	$(call repro_seeds,$(ABLATION_STAGES))

variants: setup ## the controls and variants (sr_more, tgaa_more, upst on each baseline's labels, tgaa_scratch, ...)
	$(call repro_seeds,$(VARIANT_STAGES))

test: setup ## run the test suite
	pytest $(PYTEST_ARGS)

.PHONY: test-fast
test-fast: setup ## the inner loop: the suite without the tests marked slow (end-to-end pipelines, torchrun, PostgreSQL)
	pytest -m 'not slow' $(PYTEST_ARGS)

tables: setup ## rebuild the published reports/ (the paper's tables beside ours) from MLflow
	uplr tables --out reports

lint: setup lint-docker ## ruff on the code, hadolint on the Dockerfile
	ruff check uplr tests bench scripts

clean: ## remove caches and the local MLflow store (keeps .venv and DVC's cache)
	rm -rf .pytest_cache .ruff_cache mlflow.db mlartifacts mlruns
	find . -name __pycache__ -prune -not -path './$(VENV)/*' -exec rm -rf {} +
