"""Score a folder of saved trainId predictions against Cityscapes gtFine, like the official script.

Predictions are 8-bit PNGs whose value is the trainId (0..18; 255 = no prediction, scored as
wrong), at label resolution, anywhere under the prediction folder. The prediction for
``<name>_gtFine_labelIds.png`` is the PNG whose file name is ``<name>.png`` or starts with
``<name>_`` (e.g. ``<name>_leftImg8bit.png``). Ground truth labelIds are mapped to trainIds with the
table of uplr.data.labels (from cityscapesScripts); scores are accumulated over all pixels of all images (one confusion
matrix), then per-class IoU and the subset mIoUs are taken from it.

Speed: the PNGs are decoded in a thread pool (OpenCV for plain 8-bit grayscale PNGs, PIL for every
other kind; both release the GIL while they inflate), and each image adds a histogram of (labelId,
prediction value) pairs, 256 x 256 bins, counted over runs of equal pixels; the value checks and the
trainId confusion matrix are read off it. ``bench/bench_evaluate_folder.py``
compares it with cityscapesScripts' evaluator and with decoding alone.
"""

from __future__ import annotations

import bisect
import collections
import functools
import io
import itertools
import logging
import os
import struct
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from uplr.data.labels import CLASSES_19, IGNORE_LABEL, labelid_to_trainid_lut, subset
from uplr.errors import UplrError
from uplr.evaluate.metrics import summarize
from uplr.io import write_json

log = logging.getLogger(__name__)

GT_SUFFIX = "_gtFine_labelIds.png"
IGNORE = IGNORE_LABEL


@functools.cache
def _cityscapes_label_ids() -> frozenset[int]:
    """Every labelId a gtFine labelIds image may hold (0..33)."""
    from cityscapesscripts.helpers.labels import labels

    return frozenset(lab.id for lab in labels if lab.id >= 0)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _decode_gray8(data: bytes) -> np.ndarray | None:
    """OpenCV's decoder for a complete 8-bit grayscale PNG (the usual label map): ~20% less CPU than PIL
    and no copy out of a PIL image. None for anything else (palette, 16-bit, colour, truncated or
    broken files), which PIL then reads or reports."""
    if len(data) < 45 or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR" or data[-12:] != PNG_IEND:
        return None
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    if depth != 8 or colour != 0:
        return None
    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint8 or arr.shape != (height, width):
        return None
    return arr


def _read_label_png(path: Path, what: str) -> np.ndarray:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UplrError(f"{what} {path} cannot be read ({e.strerror}); check the file and its permissions") from e
    arr = _decode_gray8(data)
    if arr is not None:
        return arr
    try:
        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im)
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


def _as_uint8(arr: np.ndarray, path: Path, message: str) -> np.ndarray:
    """An 8-bit copy of a 16/32-bit label map whose values all fit, else UplrError (``message`` + the values)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        bad = _values(arr)
        bad = bad[(bad < 0) | (bad > 255)]
        raise UplrError(message.format(path=path, values=bad.tolist()[:10]))
    return arr.astype(np.uint8)


BAD_PRED = (
    "prediction {path} holds values {values} that are not trainIds (0..18, or 255 for none); "
    "save trainIds, not labelIds or colours"
)
BAD_GT = "ground truth {path} holds values {values} that are not Cityscapes labelIds; use the official *" + GT_SUFFIX


def pair_histogram(gt_ids: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """``h[g, p]`` = number of pixels with ground-truth labelId ``g`` and predicted value ``p``: int64, 256 x 256.

    Both maps are uint8 of the same shape. Label maps are piecewise constant, so the pixels are counted
    as runs: in raster order, find the last pixel of every run over which neither map changes, and
    count each run once, weighted by its length (a few streaming passes over the pixels; a bincount
    over every pixel costs several times more). Value checks and the trainId confusion matrix are
    then read off the 65,536 bins.
    """
    g, p = gt_ids.ravel(), pred.ravel()
    if g.size == 0:
        return np.zeros((256, 256), dtype=np.int64)
    changes = g[1:] != g[:-1]
    changes |= p[1:] != p[:-1]
    ends = np.append(np.flatnonzero(changes), g.size - 1)  # last pixel of every run
    lengths = np.diff(ends, prepend=-1)
    key = g[ends].astype(np.intp) * 256 + p[ends]
    hist = np.bincount(key, weights=lengths, minlength=256 * 256)  # float64: exact below 2**53
    return hist.astype(np.int64).reshape(256, 256)


def confusion_from_pairs(hist: np.ndarray, lut: np.ndarray, num_classes: int) -> np.ndarray:
    """The ``(num_classes, num_classes + 1)`` confusion matrix of :mod:`uplr.evaluate.metrics` from a pair histogram.

    Row ``g`` of ``hist`` (labelId) goes to row ``lut[g]`` (its trainId; 255 = not scored, dropped);
    column ``p`` (predicted trainId) stays ``p`` for ``p < num_classes``, every other value goes to the
    void column (scored as wrong).
    """
    rows = np.zeros((num_classes, 256), dtype=np.int64)  # trainId x labelId one-hot
    scored = np.flatnonzero(lut < num_classes)
    rows[lut[scored], scored] = 1
    cols = np.zeros((256, num_classes + 1), dtype=np.int64)  # prediction value x column one-hot
    cols[np.arange(num_classes), np.arange(num_classes)] = 1
    cols[num_classes:, num_classes] = 1
    return rows @ hist.astype(np.int64, copy=False) @ cols


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


def _match(gts: list[Path], index: _PredictionIndex, pred_dir: Path) -> list[Path]:
    """The one prediction of every ground truth (UplrError for none or several)."""
    preds = []
    for gt_path in gts:
        stem = gt_path.name[: -len(GT_SUFFIX)]
        # the ground truth itself, when the prediction folder holds it (pred_dir == gt_dir), is no prediction
        found = [p for p in index.find(stem) if not (p.name == gt_path.name and p.resolve() == gt_path.resolve())]
        if not found:
            raise UplrError(
                f"no prediction for ground truth {gt_path}: expected {stem}.png or {stem}_*.png under "
                f"{pred_dir}; predict every image of the split"
            )
        if len(found) > 1:
            raise UplrError(
                f"several predictions match ground truth {gt_path}: {[str(p) for p in found]}; keep one per image"
            )
        preds.append(found[0])
    return preds


def _score_pair(gt_path: Path, pred_path: Path, pred_ok: np.ndarray, gt_ok: np.ndarray) -> np.ndarray:
    """Decode one pair, check it, return its :func:`pair_histogram` (runs in a worker thread)."""
    gt_ids = _as_uint8(_read_label_png(gt_path, "ground truth"), gt_path, BAD_GT)
    pred = _read_label_png(pred_path, "prediction")
    if pred.shape != gt_ids.shape:
        raise UplrError(
            f"prediction {pred_path} is {pred.shape[1]}x{pred.shape[0]} but its ground truth {gt_path} is "
            f"{gt_ids.shape[1]}x{gt_ids.shape[0]}; upsample predictions to label resolution "
            "(bilinear on the logits, then argmax) and save them again"
        )
    pred = _as_uint8(pred, pred_path, BAD_PRED)
    hist = pair_histogram(gt_ids, pred)
    bad = np.flatnonzero(hist.any(axis=0) & ~pred_ok)
    if bad.size:
        raise UplrError(BAD_PRED.format(path=pred_path, values=bad.tolist()[:10]))
    bad = np.flatnonzero(hist.any(axis=1) & ~gt_ok)
    if bad.size:
        raise UplrError(BAD_GT.format(path=gt_path, values=bad.tolist()[:10]))
    return hist


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass


def _progress(total: int):
    """A tqdm bar on a terminal; nothing otherwise (what tqdm's ``disable=None`` does), and then tqdm,
    whose import costs more CPU than scoring a few images, is not imported at all."""
    if not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc="evaluate", unit="img", leave=False)


def evaluate_folder(
    pred_dir: str | Path,
    gt_dir: str | Path,
    subsets: tuple[str, ...] | list[str] = ("19", "16", "13"),
    workers: int | None = None,
) -> dict[str, Any]:
    """Score trainId PNGs under ``pred_dir`` against ``*_gtFine_labelIds.png`` under ``gt_dir``.

    Returns :func:`uplr.evaluate.metrics.summarize` of the summed confusion matrix plus
    ``n_images``. Every ground-truth image needs exactly one prediction of the same size.
    ``workers`` threads decode (default: one per CPU, at most 8).
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
    preds = _match(gts, index, pred_dir)  # every name problem before any decoding
    pred_ok = np.zeros(256, dtype=bool)
    pred_ok[: len(names)] = pred_ok[IGNORE] = True
    gt_ok = np.zeros(256, dtype=bool)
    gt_ok[sorted(valid_ids)] = True
    hist = np.zeros((256, 256), dtype=np.int64)
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        pending: collections.deque = collections.deque()
        jobs = iter(zip(gts, preds, strict=True))
        try:
            for gt_path, pred_path in itertools.islice(jobs, 2 * workers):  # bounded look-ahead
                pending.append(pool.submit(_score_pair, gt_path, pred_path, pred_ok, gt_ok))
            with _progress(len(gts)) as bar:
                while pending:
                    hist += pending.popleft().result()  # in order: the first bad file is reported
                    bar.update()
                    for gt_path, pred_path in itertools.islice(jobs, 1):
                        pending.append(pool.submit(_score_pair, gt_path, pred_path, pred_ok, gt_ok))
        finally:
            for f in pending:
                f.cancel()
    conf = confusion_from_pairs(hist, lut, len(names))
    extra = len(index) - len(set(preds))
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
