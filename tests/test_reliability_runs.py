"""Reliability of training and tracking (issue 11 items 2, 4, 5; issue 12 item 1), one test per defect.

- a non-finite loss stops training: exit != 0, one line naming the step, the loss part and the likely
  cause; no model written, the resumable checkpoint never holds non-finite weights;
- equal weights give equal model-file bytes (no temporary file name inside the zip);
- ``train.threads`` fixes torch's thread count whatever OMP_NUM_THREADS says, and the run records it;
- a tracking server whose /health answers but whose API hangs fails the stage in bounded time, with one
  line and the URI's password masked;
- SIGTERM marks the MLflow run KILLED after a last checkpoint; the resumed stage reopens that run: one
  FINISHED run whose curve starts at the first step;
- a stale RUNNING run of the same stage (its process gone) is marked FAILED with a tag saying why.
"""

from __future__ import annotations

import hashlib
import http.server
import logging
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from uplr.config import load_config
from uplr.errors import UplrError
from uplr.stages import train
from uplr.train import checkpoint as ckpt

REPO = Path(__file__).resolve().parents[1]


def _runs(client, stage):
    exp = client.get_experiment_by_name("uplr-test")
    return client.search_runs([exp.experiment_id], filter_string=f"tags.`uplr.dvc_stage` = '{stage}'")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# -- non-finite loss ---------------------------------------------------------------------------------
def test_nan_loss_stops_training_with_one_line_and_caches_nothing(tiny_params, tracking, tmp_path, capsys):
    import mlflow

    from uplr import cli

    out, resume = tmp_path / "nan", tmp_path / "nan_resume"
    rc = cli.main(["train", "--row", "source_only", "--params", str(tiny_params), "--out", str(out),
                   "--resume-dir", str(resume), "--stage", "train_nan@0", "-o", "train.lr=1.0e+6",
                   "-o", "train.checkpoint_every=1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0
    assert err[-1].startswith("uplr: error: source_only: non-finite training at step ")
    assert "train.lr=1e+06 is probably too high" in err[-1] and "Traceback" not in "\n".join(err)
    assert not (out / "model.pt").exists() and not (out / "train_log.csv").exists()
    if (resume / ckpt.LAST).exists():  # the last checkpoint is the last finite state, never NaN weights
        state = torch.load(resume / ckpt.LAST, map_location="cpu", weights_only=False)
        assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
        step = int(err[-1].split("at step ")[1].split()[0])
        assert state["step"] == step - 1  # saved after the last finite step, not after the failing one
    runs = _runs(mlflow.MlflowClient(tracking), "train_nan@0")
    assert [r.info.status for r in runs] == ["FAILED"]
    assert "non-finite" in runs[0].data.tags["uplr.failed_reason"]


def test_non_finite_first_step_blames_the_inputs_not_the_lr(tiny_params, tracking, tmp_path, monkeypatch):
    from uplr.train import loop

    real = loop.seg_loss
    monkeypatch.setattr(loop, "seg_loss", lambda *a, **k: real(*a, **k) * float("nan"))
    with pytest.raises(UplrError, match=r"non-finite training at step 1 of 6: loss_seg is nan; .*initial weights"):
        train.run(load_config(tiny_params), "source_only", 0, tmp_path / "o", tmp_path / "r", "train_nan1@0")
    assert not (tmp_path / "o/model.pt").exists() and not (tmp_path / "r" / ckpt.LAST).exists()


# -- deterministic bytes -----------------------------------------------------------------------------
def test_same_weights_give_the_same_model_file_bytes(tmp_path):
    torch.manual_seed(0)
    state = {"w": torch.randn(4, 3), "b": torch.zeros(3)}
    ckpt.save_model(tmp_path / "a/model.pt", state, {"row": "x"})
    ckpt.save_model(tmp_path / "b/other_name.pt", {k: v.clone() for k, v in state.items()}, {"row": "x"})
    ckpt.save_model(tmp_path / "a/model.pt", state, {"row": "x"})  # a second save over the first
    assert _md5(tmp_path / "a/model.pt") == _md5(tmp_path / "b/other_name.pt")
    assert torch.equal(ckpt.load_model_state(tmp_path / "b/other_name.pt")["w"], state["w"])
    assert not list(tmp_path.glob("*/*.tmp"))


# -- threads -----------------------------------------------------------------------------------------
def test_thread_count_is_a_param_applied_and_recorded(tiny_params, tracking, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    seen = []
    from uplr.train import loop

    real = loop.Trainer.train_step
    monkeypatch.setattr(loop.Trainer, "train_step",
                        lambda self, *a, **k: seen.append(torch.get_num_threads()) or real(self, *a, **k))
    try:
        train.run(load_config(tiny_params, ["train.threads=2"]), "source_only", 0, tmp_path / "t", None,
                  "train_threads@0")
    finally:
        torch.set_num_threads(1)
    assert set(seen) == {2}  # the param, not OMP_NUM_THREADS=1
    (run,) = _runs(mlflow.MlflowClient(tracking), "train_threads@0")
    assert run.data.tags["uplr.threads"] == "2" and run.data.params["train.threads"] == "2"
    assert run.data.tags["uplr.runtime.omp_num_threads_env"] == "1"
    assert run.data.tags["uplr.device"] == "cpu" and run.data.tags["uplr.torch_version"] == torch.__version__
    for key in ("uplr.runtime.openmp", "uplr.runtime.mkl", "uplr.runtime.parallel_backend"):
        assert key in run.data.tags, key
    assert run.data.tags.get("mlflow.user") and run.data.tags.get("mlflow.source.name")  # MLflow's own context


# -- a half-working tracking server ------------------------------------------------------------------
class _HalfWorking(http.server.BaseHTTPRequestHandler):
    hang_s = 8.0  # the API "hangs" this long (bounded, so the test always ends)

    def do_GET(self):  # noqa: N802
        if self.path.rstrip("/").endswith("/health"):
            self._answer(200, b"OK")
        else:
            time.sleep(self.hang_s)
            self._answer(503, b"busy")

    do_POST = do_GET  # noqa: N815

    def _answer(self, code, body):
        try:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, *args):
        pass


def test_hanging_tracking_server_fails_in_bounded_time_with_password_masked(tiny_params, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HalfWorking)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://alice:s3cret-pw@127.0.0.1:{server.server_address[1]}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "UPLR_ROOT": str(tmp_path), "OMP_NUM_THREADS": "1",
           "MLFLOW_HTTP_REQUEST_TIMEOUT": "1", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "uplr.cli", "train", "--row", "source_only", "--params", str(tiny_params),
             "--out", str(tmp_path / "o"), "--stage", "train_hang@0"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("the stage hung on a tracking server whose API does not answer")
    finally:
        server.shutdown()
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("uplr: error: MLflow tracking store http://alice:***@127.0.0.1:"), lines[-1]
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT=1" in lines[-1] and "unset MLFLOW_TRACKING_URI" in lines[-1]
    assert "Traceback" not in proc.stderr
    assert "s3cret-pw" not in proc.stdout + proc.stderr
    assert elapsed < 60  # 1 s per call plus start-up; today: MLflow's 120 s x 8 tries (> 16 min)
    assert not (tmp_path / "o/model.pt").exists()


def test_credentials_are_masked_in_every_log_line(caplog):
    from uplr.runtime import MaskCredentials, mask_credentials

    assert mask_credentials("at http://bob:pw@h:5000/x and postgresql+psycopg2://u:p%40ss@db/m") == (
        "at http://bob:***@h:5000/x and postgresql+psycopg2://u:***@db/m")
    assert mask_credentials("http://h:5000/api") == "http://h:5000/api"
    handler = logging.StreamHandler(stream := __import__("io").StringIO())
    handler.addFilter(MaskCredentials())
    other = logging.getLogger("some.library")
    other.addHandler(handler)
    try:
        other.warning("request to %s failed", "https://carol:topsecret@example.invalid/api")
    finally:
        other.removeHandler(handler)
    assert "carol:***@" in stream.getvalue() and "topsecret" not in stream.getvalue()


def test_mlflow_http_defaults_are_bounded_and_user_values_win(monkeypatch):
    from uplr.track import mlflow_run

    for k in mlflow_run.HTTP_DEFAULTS:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")
    env = mlflow_run.http_defaults()
    assert env["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"  # the user's
    assert env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"  # ours (MLflow's default: 7)
    assert mlflow_run.call_bound_s() == 7 * 3 + (1 + 2) + 2


# -- SIGTERM, resume, one run ------------------------------------------------------------------------
_STOPPABLE = """
import sys, time
from pathlib import Path
from uplr import cli, runtime
from uplr.train import loop

real = loop.Trainer.train_step
def slow_step(self, *a, **k):
    if self.step == 2:  # during step 3: tell the test, then wait (at most 30 s) for its SIGTERM
        Path(sys.argv[1]).write_text("at step 2")
        t0 = time.time()
        while time.time() - t0 < 30 and not getattr(runtime, "stop_requested", lambda: 0)():
            time.sleep(0.05)
    return real(self, *a, **k)
loop.Trainer.train_step = slow_step
sys.exit(cli.main(sys.argv[2:]))
"""


def test_sigterm_marks_run_killed_and_resume_continues_the_same_run(tiny_params, tracking, tmp_path):
    import mlflow

    stage, out, resume, marker = "train_sigterm@0", tmp_path / "s", tmp_path / "s_resume", tmp_path / "marker"
    args = ["train", "--row", "source_only", "--params", str(tiny_params), "--out", str(out),
            "--resume-dir", str(resume), "--stage", stage]
    proc = subprocess.Popen([sys.executable, "-c", _STOPPABLE, str(marker), *args], cwd=tmp_path,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        while not marker.exists() and proc.poll() is None and time.monotonic() - t0 < 120:
            time.sleep(0.05)
        assert marker.exists(), proc.communicate()[1][-2000:]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode not in (0, None) and proc.returncode > 0, (proc.returncode, err[-2000:])
    assert err.strip().splitlines()[-1].startswith("uplr: error: stopped by SIGTERM at step 3 of 6; checkpoint ")
    client = mlflow.MlflowClient(tracking)
    (killed,) = _runs(client, stage)
    assert killed.info.status == "KILLED" and "SIGTERM" in killed.data.tags["uplr.stop_reason"]
    state = torch.load(resume / ckpt.LAST, map_location="cpu", weights_only=False)
    assert state["step"] == 3 and state["run_id"] == killed.info.run_id  # the last checkpoint, with the run
    assert not (out / "model.pt").exists()

    train.run(load_config(tiny_params), "source_only", 0, out, resume, stage)  # dvc repro: resumes
    (run,) = _runs(client, stage)  # one run per stage run
    assert run.info.run_id == killed.info.run_id and run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss_seg")] == [2, 4, 6]
    assert run.data.tags["uplr.resumed"] == "1"


# -- stale RUNNING runs ------------------------------------------------------------------------------
def test_stale_running_run_of_the_same_stage_is_marked_failed(tiny_params, tracking, tmp_path):
    import mlflow

    from uplr.track.mlflow_run import ensure_experiment

    client = mlflow.MlflowClient(tracking)
    exp_id = ensure_experiment("uplr-test", tracking, tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    stage = "train_stale@0"
    tags = {"uplr.dvc_stage": stage, "uplr.kind": "train", "uplr.row": "source_only", "uplr.seed": "0",
            "uplr.host": platform.node(), "uplr.pipeline_run": "old"}
    try:
        stale = client.create_run(exp_id, tags={**tags, "uplr.pid": str(dead.pid)}).info.run_id
        live = client.create_run(exp_id, tags={**tags, "uplr.pid": str(alive.pid)}).info.run_id
        other_seed = client.create_run(exp_id, tags={**tags, "uplr.pid": str(dead.pid), "uplr.seed": "1"}).info.run_id
        train.run(load_config(tiny_params), "source_only", 0, tmp_path / "o", None, stage)
    finally:
        alive.kill()
        alive.wait()
    got = {r.info.run_id: r for r in _runs(client, stage)}
    assert got[stale].info.status == "FAILED"
    assert got[stale].data.tags["uplr.failed_reason"].startswith(f"stale: RUNNING but its process (pid {dead.pid}")
    assert got[live].info.status == "RUNNING"  # a live process: left alone
    assert got[other_seed].info.status == "RUNNING"  # another seed is another stage run
    (mine,) = [r for r in got.values() if r.info.run_id not in (stale, live, other_seed)]
    assert mine.info.status == "FINISHED"
