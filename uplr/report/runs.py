"""Read evaluation results back from MLflow (the tables' only source of our numbers).

One row per finished evaluation run (tag ``uplr.kind = evaluation``): benchmark, row, seed, city,
per-class IoU and mIoUs in percent, and the run id so every number in a table can be traced to its run.
When a (benchmark, row, city, seed) was evaluated more than once, the newest run counts; failed and
still-running runs are never read. Every mIoU is recomputed from the run's per-class IoU (the mean over
the subset's classes, skipping classes absent from ground truth and prediction), so a table's subset
mIoU can never be a rescaled 19-class mean.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from uplr.data.labels import CLASSES_19, SUBSETS
from uplr.track.mlflow_run import TAG, check_reachable, tracking_uri

log = logging.getLogger(__name__)

KEYS = ["benchmark", "row", "city", "seed"]
MIOU_COLUMNS = [f"miou/{k}" for k in SUBSETS]
TOLERANCE = 0.05  # percentage points a logged mIoU may differ from the one recomputed here (rounding)


def _client(uri: str | None):
    import mlflow

    uri = uri or tracking_uri()
    check_reachable(uri)
    return mlflow.MlflowClient(tracking_uri=uri)


def _experiments(client, experiments: list[str] | None) -> list:
    """The named experiments, or every ``uplr-*`` experiment; sorted by name (deterministic)."""
    exps = [e for e in client.search_experiments()
            if (e.name in experiments if experiments else e.name.startswith("uplr-"))]
    if experiments:
        missing = sorted(set(experiments) - {e.name for e in exps})
        if missing:
            log.warning("MLflow experiment(s) not found: %s", ", ".join(missing))
    return sorted(exps, key=lambda e: e.name)


def _search(client, exps: list, filter_string: str) -> list:
    runs, token = [], None
    ids = [e.experiment_id for e in exps]
    if not ids:
        return runs
    while True:
        page = client.search_runs(ids, filter_string=filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def subset_miou(values: pd.DataFrame, subset: str) -> pd.Series:
    """mIoU of each run over a class subset: mean of its per-class IoU columns, NaN classes skipped."""
    cols = [CLASSES_19[i] for i in SUBSETS[subset]]
    with np.errstate(all="ignore"):
        return values[cols].mean(axis=1, skipna=True)


def _recompute_mious(df: pd.DataFrame) -> pd.DataFrame:
    for subset in SUBSETS:
        col = f"miou/{subset}"
        ours = subset_miou(df, subset)
        if col in df:
            bad = ((df[col] - ours).abs() > TOLERANCE).fillna(False)
            for i in df.index[bad]:
                log.warning("run %s logged %s = %.2f but its per-class IoU give %.2f; the tables use the latter",
                            df.at[i, "run_id"], col, df.at[i, col], ours[i])
        df[col] = ours
    return df


def evaluation_runs(experiments: list[str] | None = None, uri: str | None = None) -> pd.DataFrame:
    """All finished evaluation runs of the given experiments (default: every ``uplr-*`` experiment)."""
    client = _client(uri)
    exps = _experiments(client, experiments)
    names = {e.experiment_id: e.name for e in exps}
    rows = []
    for r in _search(client, exps, f"tags.`{TAG}kind` = 'evaluation' and attributes.status = 'FINISHED'"):
        t, m = r.data.tags, r.data.metrics
        row = {
            "experiment": names[r.info.experiment_id],
            "benchmark": t.get(f"{TAG}benchmark", ""),
            "row": t.get(f"{TAG}row", ""),
            "city": t.get(f"{TAG}city", ""),
            "seed": int(t.get(f"{TAG}seed", 0)),
            "checkpoint": t.get(f"{TAG}checkpoint", ""),
            "run_id": r.info.run_id,
            "start_time": r.info.start_time,
            "pipeline_run": t.get(f"{TAG}pipeline_run", ""),
            "git_commit": t.get(f"{TAG}git_commit", ""),
        }
        for name in CLASSES_19:
            row[name] = 100.0 * m[f"iou/{name}"] if f"iou/{name}" in m else np.nan
        for k, v in m.items():
            if k.startswith("miou/"):
                row[k] = 100.0 * v
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    # newest wins; the run id breaks ties in start time so the choice never depends on the query order
    df = df.sort_values(["start_time", "run_id"]).drop_duplicates(KEYS, keep="last")
    df = _recompute_mious(df.copy())
    return df.sort_values(KEYS).reset_index(drop=True)


def aggregate(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Mean, sample std (n-1; NaN for one seed) and n over seeds per (benchmark, row, city).

    A column's mean and std skip the seeds where it is NaN (a class absent from that run's ground truth
    and predictions); ``n`` counts the runs, ``<column>_n`` the non-NaN values behind each mean.
    """
    out = []
    for (bench, row, city), g in df.groupby(["benchmark", "row", "city"], sort=True):
        g = g.sort_values("seed")
        rec = {"benchmark": bench, "row": row, "city": city, "n": len(g),
               "seeds": ",".join(str(s) for s in g["seed"]),
               "run_ids": ",".join(g["run_id"]),
               "checkpoints": ",".join(sorted(set(g["checkpoint"]) if "checkpoint" in g else []))}
        for c in columns:
            vals = g[c].to_numpy(dtype=float) if c in g else np.array([np.nan])
            vals = vals[~np.isnan(vals)]
            rec[c] = float(vals.mean()) if len(vals) else np.nan
            rec[f"{c}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else np.nan
            rec[f"{c}_n"] = len(vals)
        out.append(rec)
    return pd.DataFrame(out)


@contextlib.contextmanager
def _quiet_downloads() -> Iterator[None]:
    """No MLflow download progress bar in the middle of the printed tables."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def class_pixel_fraction(benchmark: str, experiments: list[str] | None = None, uri: str | None = None,
                         split: str = "target/val") -> dict[str, float] | None:
    """Each class's share of the labelled pixels of ``split``, from the newest finished ``generate`` run.

    The generate stage logs the benchmark's ``summary.json`` as an MLflow artifact; only generated
    benchmarks (the embedded one) have it. None when there is no such run or artifact.
    """
    client = _client(uri)
    runs = _search(client, _experiments(client, experiments),
                   f"tags.`{TAG}kind` = 'generate' and tags.`{TAG}benchmark` = '{benchmark}' "
                   "and attributes.status = 'FINISHED'")
    if not runs:
        return None
    newest = max(runs, key=lambda r: (r.info.start_time, r.info.run_id))
    try:
        with tempfile.TemporaryDirectory() as tmp, _quiet_downloads():
            local = client.download_artifacts(newest.info.run_id, "summary.json", tmp)
            summary = json.loads(Path(local).read_text())
        fractions = summary["splits"][split]["class_pixel_fraction"]
        return {c: float(fractions[c]) for c in CLASSES_19 if c in fractions}
    except Exception as exc:  # noqa: BLE001 - a missing or odd artifact only changes Figure 6's class choice
        log.warning("no class frequencies for %s from generate run %s (%s: %s)", benchmark,
                    newest.info.run_id, exc.__class__.__name__, str(exc)[:200])
        return None


def pseudo_quality_runs(experiments: list[str] | None = None, uri: str | None = None) -> pd.DataFrame:
    """One row per finished ``pseudo_quality`` run (newest per benchmark and seed): per method and class,
    the precision of kept pixels and their coverage (metrics ``quality/<method>/<key>/<class>``)."""
    client = _client(uri)
    rows = []
    for r in _search(client, _experiments(client, experiments),
                     f"tags.`{TAG}kind` = 'pseudo_quality' and attributes.status = 'FINISHED'"):
        t = r.data.tags
        for key, value in r.data.metrics.items():
            parts = key.split("/")
            if parts[0] != "quality":
                continue
            method, metric = parts[1], parts[2]
            cls = parts[3] if len(parts) > 3 else ""
            rows.append({"benchmark": t.get(f"{TAG}benchmark", ""), "seed": int(t.get(f"{TAG}seed", 0)),
                         "run_id": r.info.run_id, "start_time": r.info.start_time, "method": method,
                         "metric": metric, "class": cls, "value": float(value)})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    newest = df.groupby(["benchmark", "seed"])["start_time"].transform("max")
    return df[df["start_time"] == newest].sort_values(["benchmark", "method", "metric", "class", "seed"])
