#!/usr/bin/env python3
"""``make mlflow-server``: a team MLflow tracking server over SQLite or PostgreSQL, artifacts local or on S3.

Checks what would otherwise fail deep inside MLflow with a long traceback (a ``postgresql://`` URI without
a driver, an unreachable database, a taken port, a missing driver package), prints the
``export MLFLOW_TRACKING_URI=...`` line clients need, then replaces itself with ``mlflow server``.
Artifacts are proxied by the server (``--serve-artifacts``), so clients need no storage credentials.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# Bare PostgreSQL schemes: SQLAlchemy 2.1 maps them to psycopg 3, which is not installed (psycopg2 is).
BARE_POSTGRES = ("postgresql://", "postgres://")
DRIVERS = {"psycopg2": "psycopg2", "psycopg": "psycopg", "pg8000": "pg8000", "asyncpg": "asyncpg",
           "pymysql": "pymysql", "mysqldb": "MySQLdb"}


class ServerConfigError(ValueError):
    """A setting of ``make mlflow-server`` is wrong; the message says which and how to fix it."""


def redact(uri: str) -> str:
    """The URI with its password replaced by ``***`` (safe to print)."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def check_backend(backend: str, default: Path) -> str:
    """The backend store URI to pass to ``mlflow server``: empty -> SQLite ``default``; a path -> SQLite file."""
    backend = backend.strip()
    if not backend:
        return f"sqlite:///{default.resolve()}"
    if backend.startswith(BARE_POSTGRES):
        fixed = "postgresql+psycopg2://" + backend.split("://", 1)[1]
        raise ServerConfigError(
            f"BACKEND={redact(backend)}: write postgresql+psycopg2:// instead of {backend.split('://')[0]}:// "
            f"(SQLAlchemy 2.1 would use psycopg 3, which is not installed), e.g. BACKEND='{redact(fixed)}'"
        )
    if "://" not in backend:  # a plain file path means a SQLite file
        return f"sqlite:///{Path(backend).expanduser().resolve()}"
    scheme = backend.split("://", 1)[0]
    if "+" in scheme:
        driver = scheme.split("+", 1)[1]
        module = DRIVERS.get(driver, driver)
        if importlib.util.find_spec(module) is None:
            raise ServerConfigError(
                f"BACKEND={redact(backend)}: the database driver {driver!r} is not installed in this "
                "environment; use postgresql+psycopg2:// (psycopg2-binary is in requirements.lock)"
            )
    elif scheme.startswith(("mysql", "mssql")):
        raise ServerConfigError(f"BACKEND={redact(backend)}: name the driver, e.g. {scheme}+pymysql://")
    return backend


def check_database(uri: str, timeout: int = 5) -> None:
    """Connect once, so a wrong host, password or database name is one clear line, not a traceback."""
    if not uri.startswith(("postgresql+", "mysql+", "mssql+")):
        return
    import sqlalchemy as sa

    args = {"connect_timeout": timeout} if uri.startswith("postgresql+psycopg2") else {}
    try:
        engine = sa.create_engine(uri, connect_args=args)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means the server could not start
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ServerConfigError(
            f"BACKEND={redact(uri)}: cannot connect to the database ({first}). Check host, port, user, password "
            "and that the database exists (createdb mlflow)."
        ) from exc


def check_artifacts(dest: str, create: bool = True) -> str:
    """Where the server keeps artifacts: a local folder (made absolute; created) or an object store URI."""
    dest = dest.strip()
    if not dest:
        raise ServerConfigError("ARTIFACTS is empty: give a folder or an s3://bucket/prefix URI")
    if dest.startswith("s3://"):
        if importlib.util.find_spec("boto3") is None:
            raise ServerConfigError(f"ARTIFACTS={dest}: S3 artifacts need boto3, which is not installed here")
        if not urlsplit(dest).netloc:
            raise ServerConfigError(f"ARTIFACTS={dest}: name the bucket, e.g. s3://mlflow/artifacts")
        return dest
    if "://" in dest and not dest.startswith("file://"):
        return dest  # gs://, wasbs://, ...: MLflow checks these itself
    path = Path(dest.removeprefix("file://")).expanduser().resolve()
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return str(path)


def check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ServerConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror}); is a server already running there? "
                f"Pick another port: make mlflow-server PORT={port + 1}"
            ) from exc


def tracking_uri(host: str, port: int) -> str:
    """What clients put in MLFLOW_TRACKING_URI (a wildcard bind address is reached via this host's name)."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    return f"http://{host}:{port}"


def server_command(backend: str, artifacts: str, host: str, port: int, workers: int,
                   extra: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """The ``mlflow server`` command line and the environment variables to add for it.

    The backend URI travels in ``MLFLOW_BACKEND_STORE_URI`` (an option of ``mlflow server``), not on the
    command line, so its password does not show in ``ps``. MLflow's job runner (GenAI jobs, seven extra
    processes) is off unless ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION`` is set: uplr logs no jobs.
    """
    mlflow = Path(sys.executable).parent / "mlflow"
    cmd = [str(mlflow) if mlflow.exists() else "mlflow", "server",
           "--serve-artifacts", "--artifacts-destination", artifacts,
           "--host", host, "--port", str(port), "--workers", str(workers), *(extra or [])]
    env = {"MLFLOW_BACKEND_STORE_URI": backend,
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")}
    return cmd, env


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mlflow_server.py", description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="", help="SQLAlchemy URI or SQLite file (default: --default-db)")
    ap.add_argument("--default-db", default="mlflow-server.db", help="SQLite file used when --backend is empty")
    ap.add_argument("--artifacts", default="mlflow-server-artifacts", help="folder or s3://bucket/prefix")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dry-run", action="store_true", help="check the settings and print the command only")
    ap.add_argument("extra", nargs="*", help="more `mlflow server` options, after --")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        backend = check_backend(args.backend, Path(args.default_db))
        artifacts = check_artifacts(args.artifacts, create=False)
        cmd, env = server_command(backend, artifacts, args.host, args.port, args.workers, args.extra)
        if not args.dry_run:
            check_port(args.host, args.port)
            check_database(backend)
            check_artifacts(args.artifacts, create=True)  # only once everything else is fine
    except ServerConfigError as exc:
        print(f"mlflow-server: error: {exc}", file=sys.stderr)
        return 2
    where = artifacts
    if artifacts.startswith("s3://"):
        endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL")
        where += f" (endpoint {endpoint})" if endpoint else " (AWS S3; set MLFLOW_S3_ENDPOINT_URL for MinIO & co.)"
    print(f"MLflow tracking server on {tracking_uri(args.host, args.port)}\n"
          f"  backend store: {redact(backend)}\n  artifacts:     {where}\n"
          "In every shell that runs the pipeline (make demo, uplr ..., make tables):\n"
          f"  export MLFLOW_TRACKING_URI={tracking_uri(args.host, args.port)}", flush=True)
    if args.dry_run:
        print(" ".join([*(f"{k}={redact(v)}" for k, v in env.items()), *cmd]))
        return 0
    os.execvpe(cmd[0], cmd, {**os.environ, **env})
    return 1  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
