"""Score a folder of saved trainId predictions against Cityscapes gtFine, like the official script.

Predictions are 8-bit PNGs whose value is the trainId (0..18; 255 = no prediction, scored as
wrong), at label resolution, anywhere under the prediction folder. The prediction for
``<name>_gtFine_labelIds.png`` is the PNG whose file name is ``<name>.png`` or starts with
``<name>_`` (e.g. ``<name>_leftImg8bit.png``). Ground truth labelIds are mapped to trainIds with the
table of uplr.data.labels (from cityscapesScripts); scores are accumulated over all pixels of all images (one confusion
matrix), then per-class IoU and the subset mIoUs are taken from it.
"""

from __future__ import annotations

import bisect
import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from uplr.data.labels import CLASSES_19, IGNORE_LABEL, labelid_to_trainid_lut, subset
from uplr.errors import UplrError
from uplr.evaluate.metrics import confusion_matrix, summarize
from uplr.io import write_json

log = logging.getLogger(__name__)

GT_SUFFIX = "_gtFine_labelIds.png"
IGNORE = IGNORE_LABEL


@functools.cache
def _cityscapes_label_ids() -> frozenset[int]:
    """Every labelId a gtFine labelIds image may hold (0..33)."""
    from cityscapesscripts.helpers.labels import labels

    return frozenset(lab.id for lab in labels if lab.id >= 0)


def _read_label_png(path: Path, what: str) -> np.ndarray:
    try:
        with Image.open(path) as im:
            arr = np.array(im)
    except Exception as e:  # PIL raises many types for broken files
        raise UplrError(
            f"{what} {path} is not a readable PNG ({e}); rewrite it as an 8-bit grayscale PNG"
        ) from e
    if arr.ndim != 2 or arr.dtype.kind not in "ui":
        raise UplrError(
            f"{what} {path} is a {arr.ndim}-D {arr.dtype} image; it must be a single-channel label image "
            "(8-bit grayscale PNG, value = class id)"
        )
    return arr


def _values(arr: np.ndarray) -> np.ndarray:
    """Distinct values of a label map (bincount for unsigned maps: no sort of every pixel)."""
    if arr.dtype.kind == "u":
        return np.flatnonzero(np.bincount(arr.ravel()))
    return np.unique(arr)


class _PredictionIndex:
    """Every PNG under a folder, sorted by file name for prefix look-ups."""

    def __init__(self, pred_dir: Path):
        entries = sorted((p.name, p) for p in pred_dir.rglob("*.png") if p.is_file())
        self.names = [n for n, _ in entries]
        self.paths = [p for _, p in entries]

    def __len__(self) -> int:
        return len(self.paths)

    def find(self, stem: str) -> list[Path]:
        """PNGs named ``<stem>.png`` or ``<stem>_*``."""
        found = []
        for i in range(bisect.bisect_left(self.names, stem), len(self.names)):
            name = self.names[i]
            if not name.startswith(stem):
                break
            if name == f"{stem}.png" or name[len(stem)] == "_":
                found.append(self.paths[i])
        return found


def evaluate_folder(
    pred_dir: str | Path, gt_dir: str | Path, subsets: tuple[str, ...] | list[str] = ("19", "16", "13")
) -> dict[str, Any]:
    """Score trainId PNGs under ``pred_dir`` against ``*_gtFine_labelIds.png`` under ``gt_dir``.

    Returns :func:`uplr.evaluate.metrics.summarize` of the summed confusion matrix plus
    ``n_images``. Every ground-truth image needs exactly one prediction of the same size.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    names, lut, valid_ids = CLASSES_19, labelid_to_trainid_lut(), _cityscapes_label_ids()
    chosen = {name: subset(name) for name in subsets}  # UplrError for an unknown name
    if not gt_dir.is_dir():
        raise UplrError(
            f"ground-truth folder {gt_dir} does not exist; point --gt-dir at a Cityscapes gtFine split"
        )
    if not pred_dir.is_dir():
        raise UplrError(
            f"prediction folder {pred_dir} does not exist; point --pred-dir at the saved predictions"
        )
    gts = sorted(gt_dir.rglob(f"*{GT_SUFFIX}"))
    if not gts:
        raise UplrError(
            f"ground-truth folder {gt_dir} holds no *{GT_SUFFIX} files; point --gt-dir at a Cityscapes "
            "gtFine split such as gtFine/val"
        )
    index = _PredictionIndex(pred_dir)
    used: set[Path] = set()
    conf = np.zeros((len(names), len(names) + 1), dtype=np.int64)
    for gt_path in tqdm(gts, desc="evaluate", unit="img", leave=False):
        stem = gt_path.name[: -len(GT_SUFFIX)]
        found = [p for p in index.find(stem) if p.resolve() != gt_path.resolve()]
        if not found:
            raise UplrError(
                f"no prediction for ground truth {gt_path}: expected {stem}.png or {stem}_*.png under "
                f"{pred_dir}; predict every image of the split"
            )
        if len(found) > 1:
            raise UplrError(
                f"several predictions match ground truth {gt_path}: {[str(p) for p in found]}; keep one per image"
            )
        pred_path = found[0]
        used.add(pred_path)
        gt_ids = _read_label_png(gt_path, "ground truth")
        pred = _read_label_png(pred_path, "prediction")
        if pred.shape != gt_ids.shape:
            raise UplrError(
                f"prediction {pred_path} is {pred.shape[1]}x{pred.shape[0]} but its ground truth {gt_path} is "
                f"{gt_ids.shape[1]}x{gt_ids.shape[0]}; upsample predictions to label resolution "
                "(bilinear on the logits, then argmax) and save them again"
            )
        bad = np.setdiff1d(_values(pred), np.r_[np.arange(len(names)), IGNORE])
        if bad.size:
            raise UplrError(
                f"prediction {pred_path} holds values {bad.tolist()[:10]} that are not trainIds "
                f"(0..{len(names) - 1}, or {IGNORE} for none); save trainIds, not labelIds or colours"
            )
        bad = np.setdiff1d(_values(gt_ids), sorted(valid_ids))
        if bad.size:
            raise UplrError(
                f"ground truth {gt_path} holds values {bad.tolist()[:10]} that are not Cityscapes labelIds; "
                f"use the official *{GT_SUFFIX} files"
            )
        conf += confusion_matrix(pred, lut[gt_ids], num_classes=len(names), ignore_index=IGNORE)
    extra = len(index) - len(used)
    if extra:
        log.warning("%d PNG file(s) under %s matched no ground truth and were not scored", extra, pred_dir)
    result = summarize(conf, names, chosen)
    result["n_images"] = len(gts)
    log.info(
        "evaluated %d images: %s",
        len(gts),
        ", ".join(
            f"mIoU{k}={v * 100:.2f}" if v is not None else f"mIoU{k}=n/a" for k, v in result["miou"].items()
        ),
    )
    return result


def write_result(result: dict[str, Any], path: str | Path) -> None:
    """Write an :func:`evaluate_folder` result as JSON, atomically."""
    write_json(path, result)
