"""Team tracking: an MLflow server over PostgreSQL records the pipeline's runs and the tables read them back.

The end-to-end test starts a throwaway PostgreSQL cluster (scripts/pg_throwaway.py) and ``mlflow server``
through scripts/mlflow_server.py (what ``make mlflow-server`` runs), then drives ``uplr train``,
``uplr evaluate`` and ``uplr tables`` as separate processes with only ``MLFLOW_TRACKING_URI`` pointing at
the server, as a team member would. It skips when the PostgreSQL server binaries are absent
(``apt-get install -y postgresql``). The other tests check the make target, the URI checks and the
docker compose file (which cannot be run here: no Docker engine).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
sys.path.insert(0, str(SCRIPTS))

import mlflow_server  # noqa: E402
import pg_throwaway  # noqa: E402

SERVER_START_TIMEOUT = 90  # seconds; MLflow creates its tables in PostgreSQL on the first start


def _uplr() -> str:
    """The uplr entry point of the environment running the tests (.venv/bin/uplr under `make test`)."""
    exe = Path(sys.executable).parent / "uplr"
    return str(exe) if exe.exists() else (shutil.which("uplr") or "uplr")


def _lock_version(package: str) -> str:
    m = re.search(rf"^{re.escape(package)}==([^\s\\]+)", (REPO / "requirements.lock").read_text(), re.M)
    assert m, f"{package} is not pinned in requirements.lock"
    return m.group(1)


def _cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([_uplr(), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _client_env(tmp_path: Path, uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "UPLR_"))}
    env.update({"MLFLOW_TRACKING_URI": uri, "UPLR_ROOT": str(tmp_path), "UPLR_MLFLOW_TIMEOUT": "5",
                "UPLR_PIPELINE_RUN": "team-test-pipeline", "OMP_NUM_THREADS": "1"})
    return env


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url + "/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow server not healthy after {SERVER_START_TIMEOUT}s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen | None) -> None:
    """Stop the server and its workers (mlflow server runs uvicorn as a child: signal the whole group)."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# --------------------------------------------------------------------------------------------------
# end to end


@pytest.mark.slow
def test_team_server_on_postgres_records_pipeline_and_feeds_tables(tiny_params, tmp_path):
    import mlflow
    import sqlalchemy as sa

    try:
        cluster = pg_throwaway.start_cluster("mlflow")
    except pg_throwaway.PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL server here ({exc})")
    server = None
    try:
        port = pg_throwaway.free_port()
        url = f"http://127.0.0.1:{port}"
        artifacts = tmp_path / "artifacts"
        log = tmp_path / "mlflow-server.log"
        with log.open("w") as fh:
            server = subprocess.Popen(
                [sys.executable, str(SCRIPTS / "mlflow_server.py"), "--backend", cluster.uri("mlflow"),
                 "--artifacts", str(artifacts), "--port", str(port), "--workers", "1"],
                cwd=tmp_path, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
            )
        _wait_healthy(url, server, log)
        assert f"export MLFLOW_TRACKING_URI={url}" in log.read_text()
        assert cluster.password not in log.read_text()  # the printed backend URI is redacted
        assert cluster.password.encode() not in Path(f"/proc/{server.pid}/cmdline").read_bytes()  # nor in `ps`

        env = _client_env(tmp_path, url)
        common = ["--params", str(tiny_params), "-o", "train.device=cpu"]
        r = _cli(["train", *common, "--row", "source_only", "--seed", "0", "--out", "runs/so",
                  "--stage", "train_source_only"], env, tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
        r = _cli(["evaluate", *common, "--model", "runs/so/model.pt", "--row", "source_only", "--seed", "0",
                  "--out", "metrics/so.json", "--stage", "evaluate_source_only"], env, tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
        r = _cli(["tables", "--out", str(tmp_path / "reports")], env, tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
        scores = json.loads((tmp_path / "metrics/so.json").read_text())

        # the runs are in the server, with their lineage
        client = mlflow.MlflowClient(tracking_uri=url)
        exp = client.get_experiment_by_name("uplr-test")
        assert exp is not None
        runs = {run.data.tags["uplr.kind"]: run for run in client.search_runs([exp.experiment_id])}
        assert sorted(runs) == ["evaluation", "train"]
        for kind, stage in (("train", "train_source_only"), ("evaluation", "evaluate_source_only")):
            run = runs[kind]
            tags = run.data.tags
            assert run.info.status == "FINISHED"
            assert tags["uplr.dvc_stage"] == stage
            assert tags["uplr.pipeline_run"] == "team-test-pipeline"
            assert tags["uplr.row"] == "source_only" and tags["uplr.seed"] == "0"
            assert {"uplr.git_commit", "uplr.image", "uplr.torch_version"} <= set(tags)
            assert any(k.startswith("uplr.input.") for k in tags)
        ev = runs["evaluation"]
        assert "uplr.input.runs/so/model.pt" in ev.data.tags
        assert math.isclose(ev.data.metrics["miou/19"], scores["miou"]["19"], rel_tol=1e-6)
        # artifacts went through the server's proxy into --artifacts-destination
        assert [a.path for a in client.list_artifacts(ev.info.run_id)] == ["so.json"]
        assert json.loads(next(artifacts.rglob("so.json")).read_text()) == scores

        # ... and they really live in PostgreSQL (not in some local fallback store)
        engine = sa.create_engine(cluster.uri("mlflow"))
        with engine.connect() as conn:
            stored = dict(conn.execute(sa.text(
                "select r.run_uuid, t.value from runs r join tags t on t.run_uuid = r.run_uuid "
                "where t.key = 'uplr.kind'")).all())
        engine.dispose()
        assert stored == {runs["train"].info.run_id: "train", ev.info.run_id: "evaluation"}

        # the tables were built from the server's runs: "Source only" carries this run's scores
        md = (tmp_path / "reports/embedded.md").read_text()
        row = next(line for line in md.splitlines() if line.startswith("| Source only |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[-2] == f"{100 * scores['miou']['19']:.1f}" and cells[-1] == "1"
        with (tmp_path / "reports/embedded.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        so = next(r for r in rows if r["method"] == "Source only")
        assert so["run_ids"] == ev.info.run_id
        assert math.isclose(float(so["miou/19"]), 100 * scores["miou"]["19"], abs_tol=1e-4)
        for name, iou in scores["iou"].items():
            assert (so[name] == "") if iou is None else math.isclose(float(so[name]), 100 * iou, abs_tol=1e-4), name
    finally:
        _stop(server)
        cluster.stop()
    assert not cluster.base.exists()


@pytest.mark.slow
def test_unreachable_tracking_server_fails_before_training(tiny_params, tmp_path):
    uri = f"http://127.0.0.1:{pg_throwaway.free_port()}"  # nothing listens there
    r = _cli(["train", "--params", str(tiny_params), "-o", "train.device=cpu", "--row", "source_only",
              "--out", "runs/so", "--resume-dir", "runs/resume"], _client_env(tmp_path, uri), tmp_path)
    assert r.returncode != 0
    assert uri in r.stderr and "unreachable" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "runs/so/model.pt").exists()
    assert not list(tmp_path.rglob("*.pt"))  # no checkpoint either: training never started


# --------------------------------------------------------------------------------------------------
# make mlflow-server and its checks


@pytest.mark.parametrize("bare", ["postgresql", "postgres"])
def test_backend_without_driver_is_rejected_with_the_fix(bare):
    r = subprocess.run([sys.executable, str(SCRIPTS / "mlflow_server.py"), "--dry-run",
                        "--backend", f"{bare}://alice:s3cret@db.example:5432/mlflow"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "postgresql+psycopg2://" in r.stderr and "SQLAlchemy" in r.stderr
    assert "alice:***@db.example:5432/mlflow" in r.stderr and "s3cret" not in r.stderr


def test_backend_defaults_and_paths(tmp_path):
    assert mlflow_server.check_backend("", tmp_path / "m.db") == f"sqlite:///{tmp_path / 'm.db'}"
    assert mlflow_server.check_backend(str(tmp_path / "x.db"), tmp_path / "m.db") == f"sqlite:///{tmp_path / 'x.db'}"
    uri = "postgresql+psycopg2://u:p@127.0.0.1:5432/mlflow"
    assert mlflow_server.check_backend(uri, tmp_path / "m.db") == uri
    with pytest.raises(mlflow_server.ServerConfigError, match="not installed"):
        mlflow_server.check_backend("postgresql+nosuchdriver://u@h/db", tmp_path / "m.db")
    assert mlflow_server.redact(uri) == "postgresql+psycopg2://u:***@127.0.0.1:5432/mlflow"


def test_unreachable_database_is_one_clear_line(tmp_path):
    uri = f"postgresql+psycopg2://u:pw@127.0.0.1:{pg_throwaway.free_port()}/mlflow"
    r = subprocess.run([sys.executable, str(SCRIPTS / "mlflow_server.py"), "--backend", uri,
                        "--artifacts", str(tmp_path / "a"), "--port", str(pg_throwaway.free_port())],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "cannot connect to the database" in r.stderr
    assert "Traceback" not in r.stderr and ":pw@" not in r.stderr
    assert not (tmp_path / "a").exists()  # a failed start leaves nothing behind


def test_dry_run_prints_export_line_and_command(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPTS / "mlflow_server.py"), "--dry-run", "--port", "5123",
                        "--default-db", str(tmp_path / "srv.db"), "--artifacts", str(tmp_path / "art")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "export MLFLOW_TRACKING_URI=http://127.0.0.1:5123" in r.stdout
    words = r.stdout.strip().splitlines()[-1].split()
    env = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
    cmd = [w for w in words if w.split("=", 1)[0] not in env]
    assert cmd[1] == "server" and Path(cmd[0]).name == "mlflow"
    # the backend URI goes through the environment (keeps its password out of `ps`)
    assert env["MLFLOW_BACKEND_STORE_URI"] == f"sqlite:///{tmp_path / 'srv.db'}"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert "--serve-artifacts" in cmd and cmd[cmd.index("--artifacts-destination") + 1] == str(tmp_path / "art")
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "5123"
    assert not (tmp_path / "art").exists()  # a dry run creates nothing


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_target_passes_settings_and_rejects_bare_postgres():
    # -o setup: never (re)build the venv from inside a test
    r = subprocess.run(["make", "-s", "-o", "setup", "mlflow-server",
                        "BACKEND=postgresql://bob:pw@127.0.0.1:5432/mlflow"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "write postgresql+psycopg2://" in r.stderr, r.stderr
    r = subprocess.run(["make", "-n", "-o", "setup", "mlflow-server", "PORT=5123"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "scripts/mlflow_server.py" in r.stdout and "--port '5123'" in r.stdout
    assert f"--default-db '{REPO}/mlflow-server.db'" in r.stdout


# --------------------------------------------------------------------------------------------------
# docker/compose.yaml (cannot be run here; checked for shape and agreement with the lock)


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker/compose.yaml").read_text())


def test_compose_has_the_team_services_with_pinned_images():
    services = _compose()["services"]
    assert set(services) == {"postgres", "minio", "minio-init", "mlflow"}
    images = [s["image"] for name, s in services.items() if name != "mlflow"]
    for image in images:
        ref, _, digest = image.partition("@")
        assert ":" in ref.rsplit("/", 1)[-1] and not ref.endswith((":latest", ":stable")), image
        assert digest == "" or re.fullmatch(r"sha256:[0-9a-f]{64}", digest), image
    dockerfile = services["mlflow"]["build"]["dockerfile_inline"]
    # the server runs the same MLflow, driver and boto3 as the clients' requirements.lock
    assert f"FROM ghcr.io/mlflow/mlflow:v{_lock_version('mlflow')}\n" in dockerfile
    for pkg in ("psycopg2-binary", "boto3"):
        assert f"{pkg}=={_lock_version(pkg)}" in dockerfile
    command = " ".join(services["mlflow"]["command"])
    assert "postgresql+psycopg2://" in command and "@postgres:5432/" in command
    assert "--serve-artifacts" in command and "s3://" in command
    assert services["mlflow"]["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert services["mlflow"]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"


def test_compose_credentials_come_from_the_uncommitted_env_file():
    text = (REPO / "docker/compose.yaml").read_text()
    services = _compose()["services"]
    example = (REPO / "docker/team.env.example").read_text()
    defined = set(re.findall(r"^([A-Z0-9_]+)=", example, re.M))
    for name, svc in services.items():
        assert svc["env_file"] == "team.env", name
        for var in re.findall(r"\$\$\{?([A-Z0-9_]+)", " ".join(map(str, svc.get("command", [])))):
            assert var in defined, f"{name} uses ${var}, which team.env.example does not define"
    assert {"POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "AWS_SECRET_ACCESS_KEY"} <= defined
    assert not re.search(r"(PASSWORD|SECRET)[A-Z_]*\s*[:=]\s*\S", text), "a secret is written in compose.yaml"
    if (REPO / ".git").exists() and shutil.which("git"):
        ignored = subprocess.run(["git", "check-ignore", "-q", "docker/team.env"], cwd=REPO)
        assert ignored.returncode == 0, "docker/team.env must be git-ignored"
