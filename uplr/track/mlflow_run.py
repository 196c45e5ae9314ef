"""Every stage run is an MLflow run: params, metrics, curves and lineage tags.

Default store: a SQLite file ``mlflow.db`` at the repository root (git-ignored) with artifacts under
``mlartifacts/``; ``MLFLOW_TRACKING_URI`` overrides (a team server, PostgreSQL, ...). Only rank 0 of a
torchrun job talks to MLflow; other ranks get a handle that does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from uplr.errors import UplrError
from uplr.runtime import is_main
from uplr.track import lineage

log = logging.getLogger(__name__)

TAG = "uplr."  # prefix of our tags


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
    """Fail early, before any training, when the tracking store cannot be reached."""
    import mlflow

    if uri.startswith(("http://", "https://")):
        import requests

        try:
            r = requests.get(uri.rstrip("/") + "/health", timeout=float(os.environ.get("UPLR_MLFLOW_TIMEOUT", "10")))
            r.raise_for_status()
        except requests.RequestException as exc:
            raise UplrError(
                f"MLflow tracking server {uri} is unreachable ({exc.__class__.__name__}: {exc}). Start it "
                "(`make mlflow-server`), fix MLFLOW_TRACKING_URI, or unset it to use the local SQLite store."
            ) from exc
        return
    try:
        mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - any backend error means "unusable"
        raise UplrError(
            f"MLflow tracking store {uri} cannot be used ({exc.__class__.__name__}: {str(exc)[:300]}). "
            "Fix MLFLOW_TRACKING_URI (PostgreSQL needs postgresql+psycopg2://user:pw@host/db) or unset it."
        ) from exc


def ensure_experiment(name: str, uri: str, root: Path) -> str:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return client.create_experiment(name, artifact_location=_default_artifact_location(uri, root))


class Run:
    """A thin handle on one MLflow run (no-op on ranks other than 0)."""

    def __init__(self, client: Any = None, run_id: str | None = None):
        self.client, self.run_id = client, run_id

    @property
    def active(self) -> bool:
        return self.client is not None

    def log_metrics(self, metrics: dict[str, float | None], step: int | None = None) -> None:
        if not self.active:
            return
        import time

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        batch = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items() if v is not None]
        for i in range(0, len(batch), 900):
            self.client.log_batch(self.run_id, metrics=batch[i : i + 900])

    def log_params(self, params: dict[str, Any]) -> None:
        if not self.active:
            return
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 90):
            self.client.log_batch(self.run_id, params=items[i : i + 90])

    def set_tags(self, tags: dict[str, Any]) -> None:
        if not self.active:
            return
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if self.active and Path(path).exists():
            if Path(path).is_dir():
                self.client.log_artifacts(self.run_id, str(path), artifact_path)
            else:
                self.client.log_artifact(self.run_id, str(path), artifact_path)


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
        f"{TAG}torch_version": torch.__version__,
        f"{TAG}host": platform.node(),
    }
    for path, md5 in lineage.input_hashes(inputs, root).items():
        tags[f"{TAG}input.{path}"] = md5
    return tags


@contextlib.contextmanager
def stage_run(
    experiment: str,
    stage: str,
    run_name: str,
    inputs: list[Path] | None = None,
    tags: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> Iterator[Run]:
    """Open an MLflow run for one stage; marks it FAILED if the stage raises."""
    if not is_main():
        yield Run()
        return
    import mlflow

    root = lineage.repo_root()
    uri = tracking_uri(root)
    check_reachable(uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp_id = ensure_experiment(experiment, uri, root)
    all_tags = lineage_tags(stage, inputs or [], root)
    all_tags.update({f"{TAG}{k}" if not k.startswith(("uplr.", "mlflow.")) else k: str(v) for k, v in (tags or {}).items()})
    mlrun = client.create_run(exp_id, run_name=run_name, tags=all_tags)
    run = Run(client, mlrun.info.run_id)
    log.info("MLflow run %s (%s) in experiment %s at %s", run_name, run.run_id, experiment, uri)
    if params:
        run.log_params(params)
    try:
        yield run
    except BaseException:
        client.set_terminated(run.run_id, status="FAILED")
        raise
    client.set_terminated(run.run_id, status="FINISHED")
