"""`make ui` (scripts/ui.py): the model-training view's URLs, one web process, no MLflow job runner."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import ui  # noqa: E402


def test_view_urls():
    assert ui.view_url("http://127.0.0.1:5000") == "http://127.0.0.1:5000/#/experiments?workflowType=machine_learning"
    assert ui.view_url("http://h:1/", "12") == "http://h:1/#/experiments/12/runs?workflowType=machine_learning"


def test_the_installed_ui_reads_that_query_parameter():
    """The URL form is MLflow's, not ours: its UI bundle must read workflowType=machine_learning."""
    js = Path(importlib.util.find_spec("mlflow").origin).parent / "server/js/build/static/js"  # no import
    bundles = [p.read_text(errors="replace") for p in js.glob("main.*.js")]
    assert bundles, f"no MLflow UI bundle under {js}"
    assert any('get("workflowType")' in b and '"machine_learning"' in b for b in bundles)


def test_lists_only_uplr_experiments(tmp_path, tracking):
    import mlflow

    db = Path(tracking.removeprefix("sqlite:///"))  # the session's store: other tests' experiments too
    client = mlflow.MlflowClient()
    b = client.create_experiment("uplr-ui-b")
    a = client.create_experiment("uplr-ui-a")
    other = client.create_experiment("ui-someone-else")
    gone = client.create_experiment("uplr-ui-deleted")
    client.delete_experiment(gone)
    found = ui.uplr_experiments(db)
    assert [e for e in found if e[1].startswith("uplr-ui-")] == [(a, "uplr-ui-a"), (b, "uplr-ui-b")]
    assert not {other, gone} & {i for i, _ in found}
    assert all(name.startswith("uplr-") for _, name in found)
    assert ui.uplr_experiments(tmp_path / "missing.db") == []
    (tmp_path / "junk.db").write_text("not sqlite")
    assert ui.uplr_experiments(tmp_path / "junk.db") == []


def test_dry_run_prints_the_view_and_a_lean_server(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", raising=False)
    assert ui.main(["--db", str(tmp_path / "mlflow.db"), "--artifacts", str(tmp_path / "a"), "--port", "5099",
                    "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "http://127.0.0.1:5099/#/experiments?workflowType=machine_learning" in out
    assert "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false" in out and "--workers 1" in out
    assert f"sqlite:///{tmp_path / 'mlflow.db'}" in out


def test_taken_port_is_one_line(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert ui.main(["--db", str(tmp_path / "m.db"), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and f"UI_PORT={port + 1}" in err and len(err.strip().splitlines()) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group(pgid: int) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pgid=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.split(None, 1)[0] == str(pgid)]


@pytest.mark.slow
def test_server_is_two_processes_and_serves_the_ui(tmp_path):
    import requests

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"}
    proc = subprocess.Popen([sys.executable, str(SCRIPTS / "ui.py"), "--db", str(tmp_path / "mlflow.db"),
                             "--artifacts", str(tmp_path / "art"), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        deadline, status = time.monotonic() + 240, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code
                break
            except requests.ConnectionError:
                time.sleep(1)
        assert status == 200, f"UI did not answer (exit {proc.poll()})"
        time.sleep(3)  # a job runner would have started its consumers by now
        procs = _group(proc.pid)
        # `mlflow ui` and its one uvicorn process; no huey consumer, no worker pool
        assert len(procs) == 2, procs
        assert not any("huey" in p for p in procs), procs
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    assert f"http://127.0.0.1:{port}/#/experiments?workflowType=machine_learning" in out
