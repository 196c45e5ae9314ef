# The MLflow UI over the local store (mlflow.db + mlartifacts/), on its model-training view, in one
# web-server process and without MLflow's job runner. UI_PORT=5001 if 5000 is taken.
UI_HOST ?= 127.0.0.1
UI_PORT ?= 5000

.PHONY: ui

ui: setup ## MLflow UI on http://127.0.0.1:5000 (UI_PORT), model-training view; prints the URLs to open
	@$(VENV)/bin/python scripts/ui.py --db '$(CURDIR)/mlflow.db' --artifacts '$(CURDIR)/mlartifacts' \
	  --host '$(UI_HOST)' --port '$(UI_PORT)'
