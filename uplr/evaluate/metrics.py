"""Segmentation metrics: confusion matrix, per-class IoU, mIoU over class subsets.

Convention for the confusion matrix (rows = ground truth, columns = prediction): it has
``num_classes`` rows and ``num_classes + 1`` columns. The last column, :data:`VOID`, counts pixels
whose ground truth is a valid class but whose prediction is outside ``[0, num_classes)`` (for
example 255, "no prediction"). Such a pixel is a false negative of its ground-truth class and a
false positive of no class, as in the official Cityscapes evaluation (where a prediction of an
ignored labelId lands in an ignored column). Pixels whose ground truth is ``ignore_index`` are
dropped. ``conf[:, :num_classes]`` is the usual square matrix. :func:`per_class_iou` also accepts a
square matrix (then there are simply no void pixels).

Subset mIoUs (19/16/13 classes) are always means of per-class IoUs over the subset, never a
rescaled 19-class mean.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used: scoring a folder of PNGs does not need it
    import torch

from uplr.data.labels import IGNORE_LABEL

VOID = -1
"""Column index (``conf[:, VOID]``) of ground-truth pixels with an out-of-range prediction."""


def _to_numpy(x: Any) -> np.ndarray:
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def confusion_matrix(pred: Any, gt: Any, num_classes: int = 19, ignore_index: int = IGNORE_LABEL) -> np.ndarray:
    """Pixel confusion matrix, shape ``(num_classes, num_classes + 1)``, int64 (see module doc).

    ``pred`` and ``gt`` are label maps (numpy arrays or torch tensors) of equal shape. A ground truth
    outside ``[0, num_classes)`` that is not ``ignore_index`` is a ValueError: it means the labels
    were not mapped to trainIds.
    """
    p = _to_numpy(pred)
    g = _to_numpy(gt)
    if p.shape != g.shape:
        raise ValueError(f"prediction shape {p.shape} differs from ground-truth shape {g.shape}")
    g = g.reshape(-1).astype(np.int64, copy=False)
    p = p.reshape(-1).astype(np.int64, copy=False)
    valid = g != ignore_index
    g, p = g[valid], p[valid]
    if g.size and (g.min() < 0 or g.max() >= num_classes):
        bad = np.unique(g[(g < 0) | (g >= num_classes)])
        raise ValueError(
            f"ground truth holds values {bad.tolist()[:10]} outside [0, {num_classes}) that are not "
            f"ignore_index={ignore_index}; map labels to trainIds first"
        )
    p = np.where((p >= 0) & (p < num_classes), p, num_classes)
    flat = np.bincount(g * (num_classes + 1) + p, minlength=num_classes * (num_classes + 1))
    return flat.reshape(num_classes, num_classes + 1).astype(np.int64, copy=False)


class ConfusionMeter:
    """Accumulates :func:`confusion_matrix` on the device, batch after batch.

    Only the small matrix lives on the device; label maps are never copied to the CPU. ``value`` is
    the numpy matrix (same layout as :func:`confusion_matrix`).
    """

    def __init__(self, num_classes: int, device: torch.device | str = "cpu", ignore_index: int = IGNORE_LABEL):
        import torch

        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.device = torch.device(device)
        self._conf = torch.zeros(num_classes * (num_classes + 1), dtype=torch.int64, device=self.device)

    def reset(self) -> None:
        self._conf.zero_()

    def update(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        """Add one batch of label maps (any equal shapes, e.g. N x H x W)."""
        import torch

        if pred.shape != gt.shape:
            raise ValueError(
                f"prediction shape {tuple(pred.shape)} differs from ground-truth shape {tuple(gt.shape)}"
            )
        n = self.num_classes
        with torch.no_grad():
            g = gt.reshape(-1).to(device=self.device, dtype=torch.int64)
            p = pred.reshape(-1).to(device=self.device, dtype=torch.int64)
            ignored = g == self.ignore_index
            if bool(((g < 0) | (g >= n)).logical_and(~ignored).any()):
                raise ValueError(
                    f"ground truth holds values outside [0, {n}) that are not ignore_index={self.ignore_index}; "
                    "map labels to trainIds first"
                )
            p = torch.where((p >= 0) & (p < n), p, torch.full_like(p, n))
            # Ignored pixels go to one extra bin past the matrix, dropped below: no boolean indexing.
            idx = torch.where(ignored, torch.full_like(g, n * (n + 1)), g * (n + 1) + p)
            self._conf += torch.bincount(idx, minlength=n * (n + 1) + 1)[: n * (n + 1)]

    def all_reduce(self) -> None:
        """Sum the matrices of all ranks (no-op outside torch.distributed)."""
        import torch

        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self._conf)

    @property
    def value(self) -> np.ndarray:
        return self._conf.reshape(self.num_classes, self.num_classes + 1).cpu().numpy().copy()


def per_class_iou(conf: np.ndarray) -> np.ndarray:
    """IoU_c = TP_c / (TP_c + FP_c + FN_c); NaN where the union is 0 (class in neither gt nor pred).

    ``conf`` is ``(C, C + 1)`` (with the void column) or square ``(C, C)``. FN counts every
    ground-truth pixel of c not predicted as c (void included); FP counts pixels predicted c whose
    ground truth is another valid class.
    """
    conf = np.asarray(conf, dtype=np.int64)
    c = conf.shape[0]
    if conf.ndim != 2 or conf.shape[1] not in (c, c + 1):
        raise ValueError(f"confusion matrix must be C x C or C x (C+1), got shape {conf.shape}")
    square = conf[:, :c]
    tp = np.diag(square).astype(np.float64)
    fn = conf.sum(axis=1) - tp
    fp = square.sum(axis=0) - tp
    union = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)
    return iou


def mean_iou(iou: np.ndarray, classes: Iterable[int]) -> float:
    """mIoU over ``classes`` (trainIds): the mean of their IoUs, skipping NaN; NaN if all are NaN."""
    vals = np.asarray(iou, dtype=np.float64)[list(classes)]
    vals = vals[~np.isnan(vals)]
    return float(vals.mean()) if vals.size else float("nan")


def pixel_accuracy(conf: np.ndarray) -> float:
    """Correct pixels / ground-truth pixels that are not ignored (void predictions count as wrong)."""
    conf = np.asarray(conf, dtype=np.int64)
    total = conf.sum()
    c = conf.shape[0]
    return float(np.trace(conf[:, :c]) / total) if total else float("nan")


def _json_float(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def summarize(
    conf: np.ndarray, class_names: Sequence[str], subsets: Mapping[str, Sequence[int]]
) -> dict[str, Any]:
    """JSON-ready scores in [0, 1]: ``{"iou": {name: v}, "miou": {subset: v}, "pixel_accuracy": v}``.

    NaN (class absent from ground truth and prediction, or nothing scored) becomes ``None``.
    """
    if len(class_names) != np.asarray(conf).shape[0]:
        raise ValueError(f"{len(class_names)} class names for a {np.asarray(conf).shape[0]}-class matrix")
    iou = per_class_iou(conf)
    return {
        "iou": {name: _json_float(v) for name, v in zip(class_names, iou.tolist(), strict=True)},
        "miou": {name: _json_float(mean_iou(iou, ids)) for name, ids in subsets.items()},
        "pixel_accuracy": _json_float(pixel_accuracy(conf)),
    }


def upsample_logits_to(logits: torch.Tensor, size: tuple[int, int] | Sequence[int]) -> torch.Tensor:
    """Bilinear (align_corners=False) resize of N x C x h x w logits to ``size = (H, W)``.

    Predictions are scored at label resolution: upsample logits, then take the argmax (never
    upsample the argmax, never downsample labels).
    """
    import torch.nn.functional as F

    if logits.dim() != 4:
        raise ValueError(f"logits must be N x C x h x w, got shape {tuple(logits.shape)}")
    h, w = int(size[0]), int(size[1])
    if tuple(logits.shape[-2:]) == (h, w):
        return logits
    return F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
