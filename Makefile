# uplr — `make help` lists the targets. Everything runs inside .venv, built from requirements.lock.
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

.PHONY: help setup lock demo ablation test tables ui lint clean
-include mk/*.mk

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

setup: $(STAMP) ## create .venv from the hash-pinned lock and install uplr (idempotent)

lock: ## regenerate requirements.lock (hash-pinned) from requirements.in
	$(PYTHON) -m pip install --quiet uv
	$(PYTHON) -m uv pip compile requirements.in --override requirements-overrides.txt --generate-hashes \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --index-strategy unsafe-best-match \
	  --index-url https://pypi.org/simple --extra-index-url file:///opt/pypi-more/simple -o requirements.lock

DEMO_STAGES := evaluate_source_only evaluate_oracle

# The demo runs as a DVC experiment in a temporary copy (dvc exp run --temp): the workspace, dvc.lock and the
# published reports/ stay as they are (git status stays clean); the runs go to MLflow, the outputs to DVC's
# cache and the experiment to `dvc exp show`; its tables go to reports/demo/ (ignored by git).
demo: setup ## embedded benchmark: generate, train source-only + oracle, evaluate, print the tables (reports/demo/)
	dvc exp run --temp $(DEMO_STAGES)
	uplr tables --out reports/demo

# SEEDS='[0,1,2]' runs the grid for three seeds (dvc exp run -S, recorded as a DVC experiment)
SEEDS ?=
ablation: setup ## Table 3 on the embedded benchmark: every row for the seeds in params.yaml (SEEDS='[0,1,2]')
ifeq ($(strip $(SEEDS)),)
	dvc repro
else
	dvc exp run -S 'seeds=$(SEEDS)'
endif

test: setup ## run the test suite
	pytest $(PYTEST_ARGS)

tables: setup ## rebuild the published reports/ (the paper's tables beside ours) from MLflow
	uplr tables --out reports

ui: setup ## MLflow UI on http://127.0.0.1:5000 over the local store
	mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///$(CURDIR)/mlflow.db \
	  --default-artifact-root $(CURDIR)/mlartifacts

lint: setup lint-docker ## ruff on the code, hadolint on the Dockerfile
	ruff check uplr tests bench scripts

clean: ## remove caches and the local MLflow store (keeps .venv and DVC's cache)
	rm -rf .pytest_cache .ruff_cache mlflow.db mlartifacts mlruns
	find . -name __pycache__ -prune -not -path './$(VENV)/*' -exec rm -rf {} +
