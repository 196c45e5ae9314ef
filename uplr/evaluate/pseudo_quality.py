"""How good pseudo labels are where the target has ground truth: per-class precision and coverage."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from uplr.data.labels import IGNORE
from uplr.errors import UplrError


def _to_numpy(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def quality_report(pairs: Iterable[tuple[Any, Any, Any]], num_classes: int = 19,
                   ignore_index: int = IGNORE) -> dict[str, Any]:
    """Per-class precision and coverage of pseudo labels, streamed over ``(pseudo, pred, gt)`` maps.

    For class c, over pixels whose ground truth is not ``ignore_index``:

    * precision_c = |pseudo = c and gt = c| / |pseudo = c|  (how often a kept label of c is right);
    * coverage_c = |pseudo = c and pred = c and gt = c| / |pred = c and gt = c|  (the share of correctly
      predicted pixels of c that were kept as c).

    Undefined ratios are ``None`` (never NaN). ``precision``/``coverage`` are the pooled ratios over all
    classes, ``mean_precision``/``mean_coverage`` the means over classes where they are defined.
    """
    c = int(num_classes)
    kept = np.zeros(c, np.int64)
    kept_right = np.zeros(c, np.int64)
    correct = np.zeros(c, np.int64)
    correct_kept = np.zeros(c, np.int64)
    n = 0
    for pseudo, pred, gt in pairs:
        pseudo, pred, gt = (_to_numpy(a).reshape(-1).astype(np.int64) for a in (pseudo, pred, gt))
        if not pseudo.shape == pred.shape == gt.shape:
            raise UplrError(f"quality_report: map {n} has sizes pseudo {pseudo.size}, pred {pred.size}, "
                            f"gt {gt.size}; they must match")
        valid = gt != ignore_index
        pseudo, pred, gt = pseudo[valid], pred[valid], gt[valid]
        in_range = (pseudo >= 0) & (pseudo < c)
        kept += np.bincount(pseudo[in_range], minlength=c)[:c]
        right = in_range & (pseudo == gt)
        kept_right += np.bincount(pseudo[right], minlength=c)[:c]
        ok = (pred == gt) & (pred >= 0) & (pred < c)
        correct += np.bincount(pred[ok], minlength=c)[:c]
        correct_kept += np.bincount(pred[ok & (pseudo == pred)], minlength=c)[:c]
        n += 1

    def ratio(a: np.ndarray | int, b: np.ndarray | int) -> list[float | None] | float | None:
        if np.ndim(a) == 0:
            return float(a / b) if b > 0 else None
        return [float(x / y) if y > 0 else None for x, y in zip(a, b, strict=True)]

    precision = ratio(kept_right, kept)
    coverage = ratio(correct_kept, correct)

    def mean(vals: list[float | None]) -> float | None:
        vals = [v for v in vals if v is not None]
        return float(np.mean(vals)) if vals else None

    per_class = [{"class": i, "kept": int(kept[i]), "kept_correct": int(kept_right[i]),
                  "correct_pred": int(correct[i]), "correct_pred_kept": int(correct_kept[i]),
                  "precision": precision[i], "coverage": coverage[i]} for i in range(c)]
    return {"num_images": n, "num_classes": c, "per_class": per_class,
            "precision": ratio(int(kept_right.sum()), int(kept.sum())),
            "coverage": ratio(int(correct_kept.sum()), int(correct.sum())),
            "mean_precision": mean(precision), "mean_coverage": mean(coverage)}
