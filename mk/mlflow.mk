# Team tracking: `make mlflow-server` (docs/team-tracking.md). Clients then set MLFLOW_TRACKING_URI.
# BACKEND: empty = SQLite file mlflow-server.db here; or postgresql+psycopg2://user:pw@host:5432/mlflow
# ARTIFACTS: a folder (default mlflow-server-artifacts/) or s3://bucket/prefix (+ MLFLOW_S3_ENDPOINT_URL,
# AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY for MinIO & co.); the server proxies them to clients.
MLFLOW_HOST ?= 127.0.0.1
PORT ?= 5000
BACKEND ?=
ARTIFACTS ?= $(CURDIR)/mlflow-server-artifacts
WORKERS ?= 2

.PHONY: mlflow-server pg-throwaway

mlflow-server: setup ## team MLflow tracking server on 127.0.0.1:PORT (5000); BACKEND=postgresql+psycopg2://..., ARTIFACTS=s3://...
	@$(VENV)/bin/python scripts/mlflow_server.py --backend '$(BACKEND)' --default-db '$(CURDIR)/mlflow-server.db' \
	  --artifacts '$(ARTIFACTS)' --host '$(MLFLOW_HOST)' --port '$(PORT)' --workers '$(WORKERS)'

pg-throwaway: setup ## a throwaway PostgreSQL on 127.0.0.1 to try BACKEND= with (Ctrl-C deletes it)
	@$(VENV)/bin/python scripts/pg_throwaway.py
