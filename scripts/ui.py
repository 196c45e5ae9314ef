#!/usr/bin/env python3
"""``make ui``: the MLflow UI over the local store, opened on its model-training view.

MLflow 3.x opens on its GenAI view (traces, token usage) unless the URL says
``workflowType=machine_learning`` (the query parameter its UI reads; without it the UI falls back to the
last view chosen in that browser, GenAI at first). This prints the model-training URLs (the experiment
list, and the runs of each ``uplr-*`` experiment already in the store), then replaces itself with
``mlflow ui`` in one web-server process and without MLflow's job runner (Huey consumers for GenAI jobs,
which uplr does not use): ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` unless set otherwise.
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import sys
from pathlib import Path
from urllib.parse import quote

VIEW = "workflowType=machine_learning"


class UiConfigError(ValueError):
    """A setting of ``make ui`` is wrong; the message says which and how to fix it."""


def view_url(base: str, experiment_id: str | None = None) -> str:
    """The UI's model-training view: the experiment list, or one experiment's runs."""
    page = f"experiments/{quote(str(experiment_id), safe='')}/runs" if experiment_id is not None else "experiments"
    return f"{base.rstrip('/')}/#/{page}?{VIEW}"


def uplr_experiments(db: Path) -> list[tuple[str, str]]:
    """(id, name) of the active ``uplr-*`` experiments in a SQLite MLflow store; [] if there is none yet."""
    if not db.is_file():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            rows = con.execute(
                "SELECT experiment_id, name FROM experiments WHERE lifecycle_stage = 'active' "
                "AND name LIKE 'uplr-%' ORDER BY name"
            ).fetchall()
    except sqlite3.Error:  # not an MLflow store (yet): the UI will say so itself
        return []
    return [(str(i), n) for i, n in rows]


def check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise UiConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror}); is the UI already running there? "
                f"Open it, or pick another port: make ui UI_PORT={port + 1}"
            ) from exc


def ui_command(db: Path, artifacts: Path, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The ``mlflow ui`` command line and the environment variables to add for it."""
    mlflow = Path(sys.executable).parent / "mlflow"
    cmd = [str(mlflow) if mlflow.exists() else "mlflow", "ui",
           "--backend-store-uri", f"sqlite:///{db.resolve()}", "--default-artifact-root", str(artifacts.resolve()),
           "--host", host, "--port", str(port), "--workers", "1"]
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")}
    return cmd, env


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ui.py", description=__doc__.splitlines()[0])
    ap.add_argument("--db", default="mlflow.db", help="the SQLite MLflow store (default: mlflow.db)")
    ap.add_argument("--artifacts", default="mlartifacts", help="artifact folder (default: mlartifacts)")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    ap.add_argument("--port", type=int, default=5000, help="port (default: 5000)")
    ap.add_argument("--dry-run", action="store_true", help="print the URLs and the command only")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    db, artifacts = Path(args.db), Path(args.artifacts)
    cmd, env = ui_command(db, artifacts, args.host, args.port)
    try:
        if not args.dry_run:
            check_port(args.host, args.port)
    except UiConfigError as exc:
        print(f"ui: error: {exc}", file=sys.stderr)
        return 2
    host = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
    base = f"http://{host}:{args.port}"
    lines = [f"MLflow UI, model-training view: {view_url(base)}"]
    for exp_id, name in uplr_experiments(db):
        lines.append(f"  {name}: {view_url(base, exp_id)}")
    if len(lines) == 1:
        lines.append("  (no uplr experiment in the store yet: `make demo` makes some)")
    lines.append("Ctrl-C stops it.")
    print("\n".join(lines), flush=True)
    if args.dry_run:
        print(" ".join([*(f"{k}={v}" for k, v in env.items()), *cmd]))
        return 0
    os.execvpe(cmd[0], cmd, {**os.environ, **env})
    return 1  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
