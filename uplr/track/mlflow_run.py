"""Every stage run is an MLflow run: params, metrics, curves and lineage tags.

Default store: a SQLite file ``mlflow.db`` at the repository root (git-ignored) with artifacts under
``mlartifacts/``; ``MLFLOW_TRACKING_URI`` overrides (a team server, PostgreSQL, ...). Only rank 0 of a
torchrun job talks to MLflow; other ranks get a handle that does nothing.

Lifecycle: one MLflow run per stage run. A stage resumed from its checkpoint reopens the run whose id the
checkpoint holds (curves and tags continue); SIGTERM/SIGINT end the run KILLED (after a last checkpoint
when training), an error FAILED; a RUNNING run of the same stage and seed whose process is gone is
marked FAILED, with ``uplr.failed_reason`` saying why, by the next run of that stage.

Tracking servers: every HTTP call is bounded (MLflow's ``MLFLOW_HTTP_REQUEST_TIMEOUT`` /
``..._MAX_RETRIES`` / ``..._BACKOFF_FACTOR``, given defaults below when unset) and a failure becomes one
line naming the server, with any password in the URI masked (as in every log line: uplr.runtime).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from uplr.errors import UplrError
from uplr.runtime import StageStopped, is_main, mask_credentials, runtime_info, stop_handlers
from uplr.track import lineage

log = logging.getLogger(__name__)

TAG = "uplr."  # prefix of our tags

# MLflow's own knobs, with bounds that suit a stage (MLflow's defaults: 120 s x 8 tries with a backoff of
# 2^n s, i.e. over 16 minutes per call against a hung server). A user's values win.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}

_OPEN_RUNS: set[str] = set()


class TrackingError(UplrError):
    """The tracking store failed (unreachable, hung, refused): one line, server named, password masked."""  # runs this process has open (a nested stage_run must not call them stale)


def http_defaults() -> dict[str, str]:
    """Set MLflow's HTTP timeout/retry variables where the user has not; return the values in effect."""
    for k, v in HTTP_DEFAULTS.items():
        os.environ.setdefault(k, v)
    return {k: os.environ[k] for k in HTTP_DEFAULTS}


def call_bound_s() -> float:
    """The longest one MLflow HTTP call can take under the settings in effect (timeouts + backoff)."""
    env = http_defaults()
    try:
        timeout = float(env["MLFLOW_HTTP_REQUEST_TIMEOUT"])
        retries = int(env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])
        backoff = float(env["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"])
    except ValueError:
        return float("nan")
    return timeout * (retries + 1) + sum(backoff * 2**i for i in range(retries)) + retries  # + jitter


def tracking_error(uri: str, doing: str, exc: BaseException) -> TrackingError:
    """One line: which server (password masked), what failed, and the fix."""
    env = http_defaults()
    detail = mask_credentials(f"{exc.__class__.__name__}: {exc}").replace("\n", " ")
    if len(detail) > 300:
        detail = detail[:300] + "..."
    if uri.startswith(("http://", "https://")):
        fix = (f"each call is bounded to ~{call_bound_s():.0f} s by MLFLOW_HTTP_REQUEST_TIMEOUT="
               f"{env['MLFLOW_HTTP_REQUEST_TIMEOUT']} and MLFLOW_HTTP_REQUEST_MAX_RETRIES="
               f"{env['MLFLOW_HTTP_REQUEST_MAX_RETRIES']}. A server whose /health answers but whose API does "
               "not usually has a stuck backend store: check the server's log and database, restart it "
               "(`make mlflow-server`), or unset MLFLOW_TRACKING_URI to use the local SQLite store")
    else:
        fix = "fix MLFLOW_TRACKING_URI or unset it to use the local SQLite store"
    return TrackingError(f"MLflow tracking store {mask_credentials(uri)}: {doing} failed ({detail}); {fix}")


def _tracked(uri: str, doing: str, fn: Callable[..., Any], *args, **kwargs) -> Any:
    """Call MLflow; any failure of the store becomes :func:`tracking_error`; its prints are masked."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):  # MlflowClient prints "View run at <uri>" (with password)
            return fn(*args, **kwargs)
    except UplrError:
        raise
    except Exception as exc:  # noqa: BLE001 - any backend error means "unusable"
        raise tracking_error(uri, doing, exc) from None
    finally:
        if buf.getvalue():
            sys.stdout.write(mask_credentials(buf.getvalue()))


def tracking_uri(root: Path | None = None) -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    root = root or lineage.repo_root()
    return f"sqlite:///{(root / 'mlflow.db').resolve()}"


def _default_artifact_location(uri: str, root: Path) -> str | None:
    """Artifacts of a local store go to ``mlartifacts/`` beside it (servers decide themselves).

    Beside the store, not under the working directory: a stage run by ``dvc exp run --temp`` (the demo)
    works in a temporary copy that is deleted afterwards, while the store is the repository's.
    """
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    if uri.startswith("file:") or "://" not in uri:
        return (root / "mlartifacts").resolve().as_uri()
    return None


def check_reachable(uri: str) -> None:
    """Fail early, before any training, when the tracking store cannot be reached or does not answer.

    A server is asked for ``/health`` and then for one API call: a server whose health check answers while
    its API hangs fails here, within :func:`call_bound_s`, instead of hanging the stage.
    """
    import mlflow

    http_defaults()
    if uri.startswith(("http://", "https://")):
        import requests

        timeout = float(os.environ.get("UPLR_MLFLOW_TIMEOUT", "10"))
        try:
            r = requests.get(uri.rstrip("/") + "/health", timeout=timeout)
            r.raise_for_status()
        except requests.RequestException as exc:
            raise UplrError(
                f"MLflow tracking server {mask_credentials(uri)} is unreachable ({exc.__class__.__name__}: "
                f"{mask_credentials(str(exc))[:300]}). Start it (`make mlflow-server`), fix MLFLOW_TRACKING_URI, "
                "or unset it to use the local SQLite store."
            ) from None
    client = mlflow.MlflowClient(tracking_uri=uri)
    if uri.startswith(("http://", "https://")):
        _tracked(uri, "an API call (search_experiments)", client.search_experiments, max_results=1)
        return
    try:
        client.search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - any backend error means "unusable"
        raise UplrError(
            f"MLflow tracking store {mask_credentials(uri)} cannot be used ({exc.__class__.__name__}: "
            f"{mask_credentials(str(exc))[:300]}). "
            "Fix MLFLOW_TRACKING_URI (PostgreSQL needs postgresql+psycopg2://user:pw@host/db) or unset it."
        ) from None


def ensure_experiment(name: str, uri: str, root: Path) -> str:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return client.create_experiment(name, artifact_location=_default_artifact_location(uri, root))


class Run:
    """A thin handle on one MLflow run (no-op on ranks other than 0); store failures are one-line errors."""

    def __init__(self, client: Any = None, run_id: str | None = None, uri: str = ""):
        self.client, self.run_id, self.uri = client, run_id, uri

    @property
    def active(self) -> bool:
        return self.client is not None

    def _call(self, doing: str, fn: Callable[..., Any], *args, **kwargs) -> Any:
        return _tracked(self.uri, f"{doing} (run {self.run_id})", fn, *args, **kwargs)

    def log_metrics(self, metrics: dict[str, float | None], step: int | None = None) -> None:
        if not self.active:
            return
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        batch = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items() if v is not None]
        for i in range(0, len(batch), 900):
            self._call("logging metrics", self.client.log_batch, self.run_id, metrics=batch[i : i + 900])

    def log_params(self, params: dict[str, Any]) -> None:
        if not self.active:
            return
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 90):
            self._call("logging params", self.client.log_batch, self.run_id, params=items[i : i + 90])

    def set_tags(self, tags: dict[str, Any]) -> None:
        if not self.active:
            return
        from mlflow.entities import RunTag

        self._call("setting tags", self.client.log_batch, self.run_id,
                   tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if self.active and Path(path).exists():
            if Path(path).is_dir():
                self._call("uploading artifacts", self.client.log_artifacts, self.run_id, str(path), artifact_path)
            else:
                self._call("uploading an artifact", self.client.log_artifact, self.run_id, str(path), artifact_path)


def lineage_tags(stage: str, inputs: list[Path], root: Path) -> dict[str, str]:
    import torch

    commit, dirty = lineage.git_commit(root)
    tags = {
        f"{TAG}git_commit": commit,
        f"{TAG}git_dirty": str(dirty).lower(),
        "mlflow.source.git.commit": commit,
        f"{TAG}dvc_stage": stage,
        f"{TAG}pipeline_run": lineage.pipeline_run_id(),
        f"{TAG}image": lineage.image_reference(),
        f"{TAG}image_id": os.environ.get("UPLR_IMAGE_ID", "none"),  # set by the docker runner
        f"{TAG}image_base": lineage.image_base(),
        f"{TAG}torch_version": torch.__version__,
        f"{TAG}host": platform.node(),
        f"{TAG}pid": str(os.getpid()),
    }
    # what decides the numbers besides code, data and params (threads: train.threads, applied before)
    info = runtime_info()
    tags[f"{TAG}threads"] = info.pop("threads")
    tags.update({f"{TAG}runtime.{k}": v for k, v in info.items()})
    for path, md5 in lineage.input_hashes(inputs, root).items():
        tags[f"{TAG}input.{path}"] = md5
    return tags


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def stale_reason(tags: dict[str, str], pipeline_run: str) -> str | None:
    """Why a RUNNING run of this stage is stale (its process is gone), or None if it may be alive."""
    host, pid = tags.get(f"{TAG}host"), tags.get(f"{TAG}pid", "")
    if host == platform.node():
        if not pid.isdigit():
            return f"RUNNING with no process id recorded (host {host}): written before runs recorded one"
        if int(pid) == os.getpid() or not _pid_alive(int(pid)):
            return f"RUNNING but its process (pid {pid} on {host}) no longer exists: it was killed or crashed"
        return None  # a live process of this host: leave it alone
    if tags.get(f"{TAG}pipeline_run") == pipeline_run:
        return (f"RUNNING on host {host} while pipeline run {pipeline_run} runs the same stage again: "
                "its process was killed or crashed")
    return None  # another host, another pipeline run: we cannot tell


def fail_stale_runs(client: Any, uri: str, exp_id: str, stage: str, tags: dict[str, str], own: str) -> list[str]:
    """Mark FAILED, with ``uplr.failed_reason``, the stale RUNNING runs of this stage (same kind and seed)."""
    filt = f"tags.`{TAG}dvc_stage` = '{stage}' and attributes.status = 'RUNNING'"
    for key in ("kind", "seed", "row"):
        if f"{TAG}{key}" in tags:
            filt += f" and tags.`{TAG}{key}` = '{tags[TAG + key]}'"
    runs = _tracked(uri, "searching stale runs", client.search_runs, [exp_id], filt, max_results=100)
    failed = []
    for r in runs:
        if r.info.run_id == own or r.info.run_id in _OPEN_RUNS:
            continue
        why = stale_reason(r.data.tags, tags.get(f"{TAG}pipeline_run", ""))
        if why is None:
            log.warning("MLflow run %s of stage %s is RUNNING in a live process; left as it is",
                        r.info.run_id, stage)
            continue
        why = f"stale: {why}; found by run {own} of the same stage on {time.strftime('%Y-%m-%d %H:%M:%S')}"
        _tracked(uri, "tagging a stale run", client.set_tag, r.info.run_id, f"{TAG}failed_reason", why)
        _tracked(uri, "closing a stale run", client.set_terminated, r.info.run_id, "FAILED")
        log.warning("MLflow run %s marked FAILED (%s)", r.info.run_id, why)
        failed.append(r.info.run_id)
    return failed


def _reopen(client: Any, uri: str, exp_id: str, run_id: str, tags: dict[str, str],
            params: dict[str, Any]) -> str | None:
    """Reopen the run a resumed checkpoint belongs to (RUNNING again); None if it cannot be."""
    from mlflow.exceptions import MlflowException

    try:
        old = client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise tracking_error(uri, f"reading run {run_id}", exc) from None
        old = None
    except Exception as exc:  # noqa: BLE001
        raise tracking_error(uri, f"reading run {run_id}", exc) from None
    if old is None or old.info.experiment_id != exp_id or old.info.lifecycle_stage != "active":
        log.warning("the checkpoint's MLflow run %s is not in this experiment/store (or deleted): "
                    "a new run is opened", run_id)
        return None
    _tracked(uri, "reopening a run", client.update_run, run_id, status="RUNNING")
    handle = Run(client, run_id, uri)
    handle.set_tags({**tags, f"{TAG}resumed": str(int(old.data.tags.get(f"{TAG}resumed", "0")) + 1)})
    new = {k: v for k, v in (params or {}).items() if k not in old.data.params}
    changed = [k for k, v in (params or {}).items() if k in old.data.params and old.data.params[k] != str(v)[:6000]]
    if changed:
        log.warning("run %s keeps its first values of %s (MLflow params cannot change)", run_id, ", ".join(changed))
    if new:
        handle.log_params(new)
    log.info("resumed MLflow run %s (%s)", run_id, old.info.run_name)
    return run_id


def _close(client: Any, uri: str, run_id: str, status: str, tags: dict[str, str] | None = None,
           strict: bool = True) -> None:
    try:
        if tags:
            Run(client, run_id, uri).set_tags(tags)
        _tracked(uri, f"closing run {run_id} as {status}", client.set_terminated, run_id, status=status)
    except UplrError as exc:
        if strict:
            raise
        log.warning("%s", exc)  # the stage's own error is the one to report


@contextlib.contextmanager
def stage_run(
    experiment: str,
    stage: str,
    run_name: str,
    inputs: list[Path] | None = None,
    tags: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    resume_run_id: str | None = None,
) -> Iterator[Run]:
    """Open (or, with ``resume_run_id``, reopen) the MLflow run of one stage run.

    FINISHED on success; KILLED on SIGTERM/SIGINT (:class:`uplr.runtime.StageStopped`) or
    KeyboardInterrupt; FAILED, with ``uplr.failed_reason``, if the stage raises. Stale RUNNING runs of
    the same stage are marked FAILED.
    """
    with stop_handlers():
        if not is_main():
            yield Run()
            return
        import mlflow
        from mlflow.tracking.context import registry

        root = lineage.repo_root()
        uri = tracking_uri(root)
        check_reachable(uri)
        client = mlflow.MlflowClient(tracking_uri=uri)
        exp_id = _tracked(uri, f"opening experiment {experiment}", ensure_experiment, experiment, uri, root)
        all_tags = lineage_tags(stage, inputs or [], root)
        all_tags.update({f"{TAG}{k}" if not k.startswith(("uplr.", "mlflow.")) else k: str(v)
                         for k, v in (tags or {}).items()})
        run_id = _reopen(client, uri, exp_id, resume_run_id, all_tags, params) if resume_run_id else None
        if run_id is None:
            # MLflow's context tags (mlflow.user, mlflow.source.name/type, ...), as mlflow.start_run sets
            resolved = registry.resolve_tags(all_tags)
            mlrun = _tracked(uri, "creating a run", client.create_run, exp_id, run_name=run_name, tags=resolved)
            run_id = mlrun.info.run_id
            if params:
                Run(client, run_id, uri).log_params(params)
        run = Run(client, run_id, uri)
        _OPEN_RUNS.add(run_id)
        log.info("MLflow run %s (%s) in experiment %s at %s", run_name, run_id, experiment, mask_credentials(uri))
        try:
            fail_stale_runs(client, uri, exp_id, stage, all_tags, run_id)
            yield run
        except (StageStopped, KeyboardInterrupt) as exc:
            _close(client, uri, run_id, "KILLED", {f"{TAG}stop_reason": mask_credentials(str(exc))[:500]}, False)
            raise
        except TrackingError:
            raise  # the store itself failed: do not wait on it again (the run is closed as stale later)
        except BaseException as exc:
            reason = mask_credentials(f"{exc.__class__.__name__}: {exc}")[:500]
            _close(client, uri, run_id, "FAILED", {f"{TAG}failed_reason": reason}, False)
            raise
        else:
            _close(client, uri, run_id, "FINISHED")
        finally:
            _OPEN_RUNS.discard(run_id)
