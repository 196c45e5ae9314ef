"""Read evaluation results back from MLflow (the tables' only source of our numbers).

One row per finished evaluation run (tag ``uplr.kind = evaluation``): benchmark, row, seed, city,
per-class IoU and mIoUs in percent, and the run id so every number in a table can be traced to its run.
When a (benchmark, row, city, seed) was evaluated more than once, the newest run counts.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from uplr.data.labels import CLASSES_19
from uplr.track.mlflow_run import TAG, check_reachable, tracking_uri

log = logging.getLogger(__name__)

KEYS = ["benchmark", "row", "city", "seed"]


def evaluation_runs(experiments: list[str] | None = None, uri: str | None = None) -> pd.DataFrame:
    """All finished evaluation runs of the given experiments (default: every ``uplr-*`` experiment)."""
    import mlflow

    uri = uri or tracking_uri()
    check_reachable(uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    exps = [e for e in client.search_experiments() if (e.name in experiments if experiments else e.name.startswith("uplr-"))]
    rows = []
    for exp in exps:
        token = None
        while True:
            page = client.search_runs(
                [exp.experiment_id],
                filter_string=f"tags.`{TAG}kind` = 'evaluation' and attributes.status = 'FINISHED'",
                max_results=1000,
                page_token=token,
            )
            for r in page:
                t, m = r.data.tags, r.data.metrics
                row = {
                    "experiment": exp.name,
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
            token = page.token
            if not token:
                break
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df = df.sort_values("start_time").drop_duplicates(KEYS, keep="last")
    return df.sort_values(KEYS).reset_index(drop=True)


def aggregate(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Mean, sample std (n-1; NaN for one seed) and n over seeds per (benchmark, row, city)."""
    out = []
    for (bench, row, city), g in df.groupby(["benchmark", "row", "city"], sort=True):
        rec = {"benchmark": bench, "row": row, "city": city, "n": len(g),
               "seeds": ",".join(str(s) for s in sorted(g["seed"])),
               "run_ids": ",".join(g.sort_values("seed")["run_id"])}
        for c in columns:
            vals = g[c].to_numpy(dtype=float) if c in g else np.array([np.nan])
            vals = vals[~np.isnan(vals)]
            rec[c] = float(vals.mean()) if len(vals) else np.nan
            rec[f"{c}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else np.nan
        out.append(rec)
    return pd.DataFrame(out)
