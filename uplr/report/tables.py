"""``make tables``: rebuild reports/ from MLflow alone.

Our numbers come only from MLflow evaluation runs (uplr/report/runs.py), as mean ± std over seeds with
n; the output is deterministic for a given set of runs (no timestamps), so rebuilding it changes
nothing unless the runs changed.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pandas as pd

from uplr.data.labels import CLASSES_19
from uplr.io import write_text
from uplr.report.runs import aggregate, evaluation_runs

log = logging.getLogger(__name__)

NOT_RUN = "not run"

# rows of the embedded benchmark's per-class table, in order: (row tag, label)
EMBEDDED_ROWS = [
    ("source_only", "Source only"),
    ("aa", "+AA"),
    ("it", "+IT"),
    ("sr", "+SR"),
    ("tgaa", "+TGAA"),
    ("upst", "+UPST"),
    ("oracle", "Oracle (target-supervised)"),
]


def fmt(mean: float, std: float | None = None, n: int | None = None, digits: int = 1) -> str:
    """``48.8``, ``48.8 ± 0.4``; NaN mean -> ``n/a`` (class absent from ground truth and predictions)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    s = f"{mean:.{digits}f}"
    if std is not None and not (isinstance(std, float) and math.isnan(std)):
        s += f" ± {std:.{digits}f}"
    return s


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def embedded_table(agg: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """Per-class IoU of the embedded benchmark: one row per configuration, mean ± std over seeds."""
    cols = [*CLASSES_19, "miou/19"]
    header = ["Method", *CLASSES_19, "mIoU", "n"]
    rows, csv_rows = [], []
    sub = agg[agg["benchmark"] == "embedded"] if not agg.empty else agg
    for tag, label in EMBEDDED_ROWS:
        hit = sub[sub["row"] == tag] if not sub.empty else sub
        if hit.empty:
            if tag in ("source_only", "oracle"):
                rows.append([label, *([NOT_RUN] * (len(cols))), "0"])
            continue
        r = hit.iloc[0]
        rows.append([label, *(fmt(r[c], r[f"{c}_std"]) for c in cols), str(int(r["n"]))])
        csv_rows.append({"method": label, "row": tag, "n": int(r["n"]), "seeds": r["seeds"], "run_ids": r["run_ids"],
                         **{c: round(r[c], 4) for c in cols}, **{f"{c}_std": round(r[f"{c}_std"], 4) for c in cols}})
    md = (
        "## Embedded benchmark: per-class IoU on target val (%)\n\n"
        "Mean ± sample std over seeds (n = number of seeds); the last snapshot of each run is scored. "
        "Rows come from MLflow evaluation runs (run ids in embedded.csv).\n\n"
        + markdown_table(header, rows)
    )
    return md, pd.DataFrame(csv_rows)


def run(out: Path, experiments: list[str] | None = None) -> None:
    df = evaluation_runs(experiments)
    cols = [*CLASSES_19, "miou/19", "miou/16", "miou/13", "miou/nthu13"]
    agg = aggregate(df, cols) if not df.empty else pd.DataFrame()
    out = Path(out)
    md, csv = embedded_table(agg)
    write_text(out / "embedded.md", md)
    write_text(out / "embedded.csv", csv.to_csv(index=False))
    print(md)
    log.info("tables written to %s from %d evaluation runs", out, len(df))
