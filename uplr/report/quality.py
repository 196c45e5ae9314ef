"""Pseudo-label quality (UPST vs the baselines), from MLflow's ``pseudo_quality`` runs.

A table of each method's mean per-class precision of the kept pixels and coverage (share of correctly
predicted pixels kept), mean over seeds, and the per-class bar chart (uplr.report.figures.plot_quality).
"""

from __future__ import annotations

import pandas as pd

from uplr.data.labels import CLASSES_19
from uplr.report.figures import plot_quality
from uplr.report.render import Figure, Table

METHOD_LABELS = {"gmm": "GMM on entropy (UPLR)", "threshold": "fixed threshold", "bdl": "BDL (class median, ≤ 0.9)",
                 "cbst": "CBST (class portion)"}


def _mean(df: pd.DataFrame, method: str, metric: str, cls: str = "") -> tuple[float | None, int]:
    sel = df[(df["method"] == method) & (df["metric"] == metric) & (df["class"] == cls)]
    return (float(sel["value"].mean()) if len(sel) else None), int(sel["seed"].nunique())


def quality_outputs(df: pd.DataFrame) -> tuple[list[Table], list[Figure]]:
    tables, figs = [], []
    if df.empty:
        return tables, figs
    for bench in sorted(df["benchmark"].unique()):
        sub = df[df["benchmark"] == bench]
        methods = sorted(sub["method"].unique(), key=lambda m: list(METHOD_LABELS).index(m) if m in METHOD_LABELS else 99)
        rows, reports = [], {}
        for m in methods:
            (p, n), (c, _) = _mean(sub, m, "mean_precision"), _mean(sub, m, "mean_coverage")
            (pp, _), (pc, _) = _mean(sub, m, "precision"), _mean(sub, m, "coverage")
            rows.append([METHOD_LABELS.get(m, m), *(("n/a" if v is None else f"{100 * v:.1f}") for v in (p, c, pp, pc)), str(n)])
            reports[m] = {"per_class": [{"precision": _mean(sub, m, "precision", cls)[0],
                                         "coverage": _mean(sub, m, "coverage", cls)[0]} for cls in CLASSES_19]}
        name = f"pseudo_quality_{bench}"
        tables.append(Table(name=name, title=f"Pseudo-label quality on the {bench} target train split (%)",
                            header=["Method", "mean precision", "mean coverage", "pooled precision", "pooled coverage", "n"],
                            rows=rows, figures=[f"{name}.png"],
                            notes=["precision = share of kept pixels whose label is right; coverage = share of "
                                   "correctly predicted pixels that were kept; means over classes, then over seeds "
                                   "(n); from the model of the +TGAA row."]))
        figs.append(Figure(f"{name}.png", lambda path, r=reports: plot_quality(r, CLASSES_19, path)))
    return tables, figs
