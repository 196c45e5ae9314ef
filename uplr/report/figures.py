"""PNG figures for reports/: Figure 6 (IoU of infrequent classes over TGAA's stages), Table 3 as bars,
pseudo-label quality per class.

Drawn with matplotlib's Agg canvas directly (no pyplot, so no global backend state) and saved without
the software/date metadata, so the same numbers give the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from uplr.errors import UplrError
from uplr.io import atomic_path

DPI = 100


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, target: Path) -> None:
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None}, bbox_inches=None)


def _ok(x: float) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def stage_plot(target: Path, title: str, stages: list[str], series: dict[str, list[tuple[float, float]]]) -> None:
    """One line per class across ``stages``: points (mean, std) with std error bars; NaN points skipped."""
    fig = _figure(8.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    xs = list(range(len(stages)))
    for name, points in series.items():
        keep = [(x, m, s) for x, (m, s) in zip(xs, points, strict=True) if _ok(m)]
        if not keep:
            continue
        x, m, s = zip(*keep, strict=True)
        ax.errorbar(x, m, yerr=[v if _ok(v) else 0.0 for v in s], marker="o", capsize=3, label=name)
    ax.set_xticks(xs, stages)
    ax.set_xlabel("sampling stage")
    ax.set_ylabel("IoU (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    _save(fig, target)


def ablation_bars(target: Path, title: str, labels: list[str], ours: list[tuple[float, float]],
                  paper: list[float | None] | None) -> None:
    """Our mIoU (mean, std error bar) per ablation row, beside the paper's where it applies."""
    fig = _figure(7.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    xs = list(range(len(labels)))
    width = 0.38 if paper is not None else 0.6
    shift = width / 2 if paper is not None else 0.0
    first = True
    for x, (m, s) in zip(xs, ours, strict=True):
        if _ok(m):
            ax.bar(x - shift, m, width, yerr=s if _ok(s) else None, capsize=3, color="tab:blue",
                   label="ours (mean ± std over seeds)" if first else None)
            first = False
        else:
            ax.text(x - shift, 1.0, "not run", rotation=90, ha="center", va="bottom", fontsize=8)
    if paper is not None:
        first = True
        for x, p in zip(xs, paper, strict=True):
            if p is not None:
                ax.bar(x + shift, p, width, color="tab:gray", label="paper" if first else None)
                first = False
    ax.set_xticks(xs, labels)
    ax.set_ylabel("mIoU (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    _save(fig, target)


def plot_quality(reports: Mapping[str, Mapping[str, Any]], class_names: Sequence[str], path: str | Path) -> None:
    """Grouped bars per class, one colour per method: precision (top) and coverage (bottom); PNG, atomic.

    Undefined values (``None``) draw no bar.
    """
    if not reports:
        raise UplrError("plot_quality: no reports to plot")
    names = list(class_names)
    for method, rep in reports.items():
        if len(rep["per_class"]) != len(names):
            raise UplrError(f"plot_quality: report {method!r} has {len(rep['per_class'])} classes but "
                            f"{len(names)} class names were given")
    fig = _figure(max(8.0, 0.6 * len(names) * max(1, len(reports)) / 2), 7.5)
    fig.set_layout_engine("constrained")
    axes = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(names))
    width = 0.8 / len(reports)
    for ax, key, title in ((axes[0], "precision", "precision of kept pixels"),
                           (axes[1], "coverage", "coverage of correctly predicted pixels")):
        for i, (method, rep) in enumerate(reports.items()):
            vals = [np.nan if e[key] is None else e[key] for e in rep["per_class"]]
            ax.bar(x - 0.4 + width * (i + 0.5), vals, width, label=method)
        ax.set_ylim(0, 1)
        ax.set_ylabel(key)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(ncol=min(len(reports), 4), fontsize="small")
    axes[1].set_xticks(x, names, rotation=45, ha="right")
    _save(fig, Path(path))
