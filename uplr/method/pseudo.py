"""Pseudo labels for self-training: UPLR's GMM assignment, the baselines it replaces, a streaming writer.

Every selector turns a softmax map into a uint8 label map (255 = ignore) after a ``fit`` on statistics
of the whole target set. The statistics are per-class histograms (:class:`PixelStats`), so memory does
not grow with the number of target images: :func:`pseudo_label_pass` streams the set twice, once to
accumulate and fit, once to assign and write.

Selectors (``build_selector(method, **params)``):

* ``gmm`` (UPLR): per class, a two-component GMM on the normalised entropy of the pixels predicted as
  that class; keep a pixel when the lower-mean (certainty) component has the larger posterior.
* ``threshold``: keep a pixel when its confidence (max probability) is >= ``threshold`` (0.9).
* ``bdl`` (BDL): per class, threshold = min(median confidence of the pixels predicted as c, ``cap``).
* ``cbst`` (CBST/CRST): per class, threshold t_c = the floor(n_c * p)-th largest confidence of the
  pixels predicted as c (1.0 when that rank is 0); label = argmax_c p_c / t_c if that ratio is >= 1.

Quantiles from histograms: a value at a given rank is reported as the *lower edge* of the histogram bin
that holds it, so it is at most one bin width (1 / bins) below the exact value, and a ">= threshold"
selection keeps every pixel the exact threshold would keep (plus those in the same bin).
"""

from __future__ import annotations

import hashlib
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm import tqdm

from uplr.data.labels import IGNORE_LABEL
from uplr.errors import UplrError
from uplr.io import atomic_dir, atomic_path
from uplr.method.gmm import GmmParams, certainty_posterior_wins, fit_gmm_1d
from uplr.method.uncertainty import pixel_entropy
from uplr.runtime import is_main

log = logging.getLogger(__name__)

IGNORE = IGNORE_LABEL


def class_histogram(values: torch.Tensor, classes: torch.Tensor, num_classes: int, bins: int) -> torch.Tensor:
    """C x B int64 counts of ``values`` in [0, 1] (B equal bins, clamped) per class id in ``classes``.

    Stays on the inputs' device; ids outside 0..C-1 are dropped. One ``bincount`` over
    class * B + bin, deterministic on CUDA (no weights).
    """
    b = (values.float() * bins).long().clamp_(0, bins - 1)
    cls = classes.long()
    valid = (cls >= 0) & (cls < num_classes)
    idx = cls * bins + b
    if not bool(valid.all()):
        idx = idx[valid]
    return torch.bincount(idx.reshape(-1), minlength=num_classes * bins).view(num_classes, bins)


def _as_batch(prob: torch.Tensor, num_classes: int | None, where: str) -> torch.Tensor:
    if not isinstance(prob, torch.Tensor):
        raise UplrError(f"{where}: prob must be a torch.Tensor, got {type(prob).__name__}")
    if prob.dim() == 3:
        prob = prob.unsqueeze(0)
    if prob.dim() != 4:
        raise UplrError(f"{where}: prob must be N x C x H x W or C x H x W, got shape {tuple(prob.shape)}")
    if num_classes is not None and prob.shape[1] != num_classes:
        raise UplrError(f"{where}: prob has {prob.shape[1]} classes, expected {num_classes}; "
                        "make the model's class count match num_classes")
    if prob.dtype in (torch.float16, torch.bfloat16):
        prob = prob.float()
    return prob


class PixelStats:
    """Streamed per-class histograms of pixel entropy and confidence (max probability) over a target set.

    Two C x ``bins`` int64 arrays, whatever the number of images; they live on the device of the maps
    passed to :meth:`update` (only they, never the maps, are moved). A pixel is counted under its
    predicted class (argmax; ties go to the lower id).
    """

    def __init__(self, num_classes: int, bins: int = 2048) -> None:
        if int(num_classes) < 2:
            raise UplrError(f"PixelStats: num_classes must be >= 2, got {num_classes}")
        if int(bins) < 2:
            raise UplrError(f"PixelStats: bins must be >= 2, got {bins}")
        self.num_classes, self.bins = int(num_classes), int(bins)
        self.entropy_hist = torch.zeros(self.num_classes, self.bins, dtype=torch.int64)
        self.confidence_hist = torch.zeros_like(self.entropy_hist)
        self.num_images = 0

    @torch.no_grad()
    def update(self, prob: torch.Tensor) -> None:
        """Add softmax maps ``prob`` (N x C x H x W or C x H x W, any device)."""
        prob = _as_batch(prob, self.num_classes, "PixelStats.update")
        if self.entropy_hist.device != prob.device:
            self.entropy_hist = self.entropy_hist.to(prob.device)
            self.confidence_hist = self.confidence_hist.to(prob.device)
        conf, pred = prob.max(dim=1)
        ent = pixel_entropy(prob, dim=1)
        self.entropy_hist += class_histogram(ent, pred, self.num_classes, self.bins)
        self.confidence_hist += class_histogram(conf, pred, self.num_classes, self.bins)
        self.num_images += prob.shape[0]

    @property
    def class_counts(self) -> np.ndarray:
        """Pixels predicted as each class so far (int64)."""
        return self.entropy_hist.sum(dim=1).cpu().numpy()

    @property
    def nbytes(self) -> int:
        """Bytes held by the statistics (constant: it does not depend on the number of images)."""
        return sum(t.element_size() * t.nelement() for t in (self.entropy_hist, self.confidence_hist))

    def all_reduce(self) -> PixelStats:
        """Sum the histograms over ``torchrun`` ranks (in place; call once after every rank's share).

        Without an initialised process group it does nothing. Returns self.
        """
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self
        device = torch.device("cpu")
        if dist.get_backend() == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        home = self.entropy_hist.device
        tensors = [self.entropy_hist.to(device), self.confidence_hist.to(device),
                   torch.tensor([self.num_images], dtype=torch.int64, device=device)]
        for t in tensors:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        self.entropy_hist, self.confidence_hist = tensors[0].to(home), tensors[1].to(home)
        self.num_images = int(tensors[2].item())
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "bins": self.bins, "num_images": self.num_images,
                "entropy_hist": self.entropy_hist.cpu().clone(),
                "confidence_hist": self.confidence_hist.cpu().clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if int(state["num_classes"]) != self.num_classes or int(state["bins"]) != self.bins:
            raise UplrError(f"PixelStats.load_state_dict: state is {state['num_classes']} classes x "
                            f"{state['bins']} bins, these stats are {self.num_classes} x {self.bins}")
        self.entropy_hist = torch.as_tensor(state["entropy_hist"], dtype=torch.int64).clone()
        self.confidence_hist = torch.as_tensor(state["confidence_hist"], dtype=torch.int64).clone()
        self.num_images = int(state["num_images"])


def value_at_rank(hist: np.ndarray | torch.Tensor, rank: np.ndarray) -> np.ndarray:
    """Per class, the lower edge of the bin holding the ``rank``-th largest value (1-based).

    ``hist`` is C x B counts on [0, 1]. Exact up to one bin width (the true value lies in
    [edge, edge + 1/B)). Rows with rank < 1 or rank > count give NaN (the caller decides).
    """
    h = torch.as_tensor(hist).cpu().numpy().astype(np.int64)
    bins = h.shape[1]
    desc_cum = np.cumsum(h[:, ::-1], axis=1)[:, ::-1]  # values in bin b or above
    rank = np.asarray(rank, dtype=np.int64)
    b = (desc_cum >= rank[:, None]).sum(axis=1) - 1
    ok = (rank >= 1) & (rank <= h.sum(axis=1))
    return np.where(ok, np.maximum(b, 0) / bins, np.nan)


def cbst_portion(round_idx: int, start: float = 0.2, step: float = 0.05, maximum: float = 0.5) -> float:
    """CRST's schedule of the selected portion p: ``start`` at round 0, + ``step`` per round, capped."""
    if round_idx < 0:
        raise UplrError(f"cbst_portion: round must be >= 0, got {round_idx}")
    return float(min(start + step * round_idx, maximum))


class Selector(ABC):
    """Turns softmax maps into pseudo labels: ``fit(stats)`` once, then ``assign(prob)`` per image."""

    name: ClassVar[str]
    needs_stats: ClassVar[bool] = True

    def __init__(self, bins: int = 2048) -> None:
        if int(bins) < 2:
            raise UplrError(f"pseudo-label selector: bins must be >= 2, got {bins}")
        self.bins = int(bins)
        self._fitted = not self.needs_stats

    def fit(self, stats: PixelStats) -> None:
        self._fit(stats)
        self._fitted = True

    def _fit(self, stats: PixelStats) -> None:  # noqa: B027 - selectors without statistics skip it
        pass

    @torch.no_grad()
    def assign(self, prob: torch.Tensor) -> torch.Tensor:
        """uint8 label map (255 = ignore), H x W for a C x H x W input, N x H x W for a batch."""
        if not self._fitted:
            raise UplrError(f"{self.name} selector: call fit(stats) before assign(prob)")
        single = prob.dim() == 3
        labels = self._assign(_as_batch(prob, None, f"{self.name} selector"))
        return labels[0] if single else labels

    @abstractmethod
    def _assign(self, prob: torch.Tensor) -> torch.Tensor: ...

    def summary(self) -> dict[str, Any]:
        return {"method": self.name}


def _keep(pred: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    return torch.where(keep, pred, torch.full_like(pred, IGNORE)).to(torch.uint8)


def _per_class(values: np.ndarray) -> list[float | None]:
    return [None if not math.isfinite(v) else float(v) for v in values]


class ThresholdSelector(Selector):
    """Fixed confidence threshold: keep argmax where max prob >= ``threshold``."""

    name = "threshold"
    needs_stats = False

    def __init__(self, threshold: float = 0.9, bins: int = 2048) -> None:
        super().__init__(bins)
        if not 0.0 < threshold <= 1.0:
            raise UplrError(f"threshold selector: threshold must be in (0, 1], got {threshold}")
        self.threshold = float(threshold)

    def _assign(self, prob: torch.Tensor) -> torch.Tensor:
        conf, pred = prob.max(dim=1)
        return _keep(pred, conf >= self.threshold)

    def summary(self) -> dict[str, Any]:
        return {"method": self.name, "threshold": self.threshold}


class BdlSelector(Selector):
    """BDL: per-class threshold min(median confidence of class c, ``cap``); keep conf >= threshold.

    The median is the value at 0-based ascending index floor(n_c / 2) (the middle one for odd n_c,
    the upper middle for even n_c, as BDL's index round(n_c * 0.5) gives for even n_c), read from the
    histogram (lower bin edge). A class never predicted gets the cap (it has no pixels anyway).
    """

    name = "bdl"

    def __init__(self, cap: float = 0.9, bins: int = 2048) -> None:
        super().__init__(bins)
        if not 0.0 < cap <= 1.0:
            raise UplrError(f"bdl selector: cap must be in (0, 1], got {cap}")
        self.cap = float(cap)
        self.medians = np.full(0, np.nan)
        self.thresholds = np.full(0, np.nan)

    def _fit(self, stats: PixelStats) -> None:
        n = stats.class_counts
        # ascending 0-based index floor(n/2) == descending 1-based rank n - floor(n/2)
        self.medians = value_at_rank(stats.confidence_hist, n - n // 2)
        self.thresholds = np.where(np.isnan(self.medians), self.cap, np.minimum(self.medians, self.cap))

    def _assign(self, prob: torch.Tensor) -> torch.Tensor:
        conf, pred = prob.max(dim=1)
        thr = torch.as_tensor(self.thresholds, dtype=conf.dtype, device=conf.device)[pred]
        return _keep(pred, conf >= thr)

    def summary(self) -> dict[str, Any]:
        return {"method": self.name, "cap": self.cap, "bins": self.bins, "medians": _per_class(self.medians),
                "thresholds": _per_class(self.thresholds)}


class CbstSelector(Selector):
    """CBST/CRST class-balanced selection with portion ``portion`` (p).

    t_c = the floor(n_c * p)-th largest confidence among pixels predicted as c (lower bin edge; 1.0 when
    floor(n_c * p) = 0, as in CRST); label = argmax_c prob_c / t_c where that ratio is >= 1, else 255.
    The chosen class can differ from the argmax of prob. Use :func:`cbst_portion` for CRST's schedule.
    """

    name = "cbst"

    def __init__(self, portion: float = 0.2, bins: int = 2048) -> None:
        super().__init__(bins)
        if not 0.0 < portion <= 1.0:
            raise UplrError(f"cbst selector: portion must be in (0, 1], got {portion}")
        self.portion = float(portion)
        self.thresholds = np.full(0, np.nan)

    def _fit(self, stats: PixelStats) -> None:
        n = stats.class_counts
        rank = np.floor(n * self.portion + 1e-9).astype(np.int64)
        thr = value_at_rank(stats.confidence_hist, rank)
        # rank 0 -> 1.0 (CRST); a value in the lowest bin would give 0: floor it at half a bin.
        self.thresholds = np.where(np.isnan(thr), 1.0, np.maximum(thr, 0.5 / self.bins))

    def _assign(self, prob: torch.Tensor) -> torch.Tensor:
        thr = torch.as_tensor(self.thresholds, dtype=prob.dtype, device=prob.device).view(1, -1, 1, 1)
        ratio, label = (prob / thr).max(dim=1)
        return _keep(label, ratio >= 1.0)

    def summary(self) -> dict[str, Any]:
        return {"method": self.name, "portion": self.portion, "bins": self.bins,
                "thresholds": _per_class(self.thresholds)}


class GmmSelector(Selector):
    """UPLR: per-class two-component GMM on normalised pixel entropy, fitted from the entropy histogram;
    a pixel keeps its argmax class when the certainty (lower-mean) mode's posterior is the larger."""

    name = "gmm"

    def __init__(self, bins: int = 2048, max_iter: int = 500, tol: float = 1e-6, reg_covar: float = 1e-6) -> None:
        super().__init__(bins)
        self.max_iter, self.tol, self.reg_covar = int(max_iter), float(tol), float(reg_covar)
        self.params: GmmParams | None = None

    def _fit(self, stats: PixelStats) -> None:
        self.params = fit_gmm_1d(stats.entropy_hist, max_iter=self.max_iter, tol=self.tol,
                                 reg_covar=self.reg_covar)

    def _assign(self, prob: torch.Tensor) -> torch.Tensor:
        assert self.params is not None
        pred = prob.argmax(dim=1)
        keep = certainty_posterior_wins(pixel_entropy(prob, dim=1), pred, self.params)
        return _keep(pred, keep)

    def summary(self) -> dict[str, Any]:
        return {"method": self.name, "bins": self.bins, "max_iter": self.max_iter, "tol": self.tol,
                "reg_covar": self.reg_covar, "classes": self.params.to_json() if self.params else None}


SELECTORS: dict[str, type[Selector]] = {s.name: s for s in (GmmSelector, ThresholdSelector, BdlSelector,
                                                             CbstSelector)}


def build_selector(method: str, **params: Any) -> Selector:
    """A selector by name (``gmm``, ``threshold``, ``bdl``, ``cbst``) with its keyword parameters."""
    cls = SELECTORS.get(method)
    if cls is None:
        raise UplrError(f"unknown pseudo-label method {method!r}; valid methods: {', '.join(sorted(SELECTORS))}")
    try:
        return cls(**params)
    except TypeError as exc:
        import inspect

        valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        raise UplrError(f"pseudo-label method {method!r}: bad parameters {sorted(params)} ({exc}); "
                        f"valid parameters: {', '.join(valid)}") from exc


def _check_name(name: Any) -> PurePosixPath:
    if not isinstance(name, str) or not name:
        raise UplrError(f"pseudo_label_pass: image name must be a non-empty str, got {name!r}")
    path = PurePosixPath(name)
    if path.is_absolute() or any(part in ("..", ".", "") for part in name.split("/")) or "\\" in name:
        raise UplrError(f"pseudo_label_pass: image name {name!r} must be a relative path without '.', "
                        "'..', empty parts or backslashes (it becomes <out_dir>/<name>.png)")
    return path


def pseudo_label_pass(
    predict: Callable[[], Iterable[tuple[str, torch.Tensor]]],
    selector: Selector,
    out_dir: str | Path,
    save_confidence: bool = False,
) -> dict[str, Any]:
    """Write pseudo labels for a target set in two streaming passes; returns a JSON-safe summary.

    ``predict()`` returns a fresh iterable of ``(name, prob)`` with ``prob`` a C x H x W softmax map (any
    device); it is called twice and must yield the same images in the same order (checked by a running
    hash of the names). Pass 1 (skipped for selectors without statistics) accumulates
    :class:`PixelStats` (summed over ``torchrun`` ranks) and fits the selector; pass 2 writes
    ``<out_dir>/<name>.png`` (uint8, 255 = ignore; "/" in names makes subfolders) and, with
    ``save_confidence``, ``<name>_conf.npy`` (float16 max probability). The folder appears only when
    complete (atomic); on any error nothing is left.

    Under ``torchrun`` (process group initialised) pass 1 is collective: every rank must call this, each
    with its own shard in ``predict`` and its own ``out_dir``; the fit then uses the statistics of all
    shards, while the files and the returned pixel counts are the rank's own.
    """
    out_dir = Path(out_dir)
    stats: PixelStats | None = None
    first_hash = None
    if selector.needs_stats:
        digest = hashlib.sha256()
        for name, prob in tqdm(predict(), desc=f"pseudo labels ({selector.name}) 1/2: statistics",
                               unit="img", disable=not is_main()):
            _check_name(name)
            digest.update(name.encode() + b"\0")
            if not isinstance(prob, torch.Tensor) or prob.dim() != 3:
                raise UplrError(f"pseudo_label_pass: prob for {name!r} must be a C x H x W tensor, got "
                                f"{tuple(getattr(prob, 'shape', ()))}")
            if stats is None:
                stats = PixelStats(prob.shape[0], bins=selector.bins)
            stats.update(prob)
        if stats is None:
            raise UplrError("pseudo_label_pass: predict() yielded no images; check the target list")
        stats.all_reduce()
        selector.fit(stats)
        first_hash = digest.hexdigest()

    num_classes = stats.num_classes if stats is not None else None
    predicted = kept = None
    count = 0
    digest = hashlib.sha256()
    with atomic_dir(out_dir) as tmp:
        for name, prob in tqdm(predict(), desc=f"pseudo labels ({selector.name}) 2/2: writing",
                               unit="img", disable=not is_main()):
            rel = _check_name(name)
            digest.update(name.encode() + b"\0")
            if not isinstance(prob, torch.Tensor) or prob.dim() != 3:
                raise UplrError(f"pseudo_label_pass: prob for {name!r} must be a C x H x W tensor, got "
                                f"{tuple(getattr(prob, 'shape', ()))}")
            if num_classes is None:
                num_classes = prob.shape[0]
            if prob.shape[0] != num_classes:
                raise UplrError(f"pseudo_label_pass: prob for {name!r} has {prob.shape[0]} classes, "
                                f"expected {num_classes}")
            if predicted is None:
                predicted = torch.zeros(num_classes, dtype=torch.int64, device=prob.device)
                kept = torch.zeros_like(predicted)
            label = selector.assign(prob)
            pred = prob.argmax(dim=0)
            predicted += torch.bincount(pred.reshape(-1), minlength=num_classes).to(predicted.device)
            kept += torch.bincount(label.reshape(-1).long(), minlength=256)[:num_classes].to(kept.device)
            target = tmp / f"{rel}.png"
            if target.exists():
                raise UplrError(f"pseudo_label_pass: image name {name!r} was yielded twice")
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_png(target, label.cpu().numpy())
            if save_confidence:
                conf = prob.max(dim=0).values.to(torch.float16).cpu().numpy()
                np.save(tmp / f"{rel}_conf.npy", conf)
            count += 1
        if count == 0:
            raise UplrError("pseudo_label_pass: predict() yielded no images; check the target list")
        if first_hash is not None and digest.hexdigest() != first_hash:
            raise UplrError("pseudo_label_pass: predict() yielded different images (names or order) in the "
                            "two passes; it must be deterministic and return a fresh iterable each call")
    assert predicted is not None and kept is not None
    pred_np, kept_np = predicted.cpu().numpy(), kept.cpu().numpy()
    share = [float(k / p) if p > 0 else None for k, p in zip(kept_np, pred_np, strict=True)]
    summary = {"method": selector.name, "num_images": count, "num_classes": int(num_classes),
               "predicted_pixels": [int(v) for v in pred_np], "kept_pixels": [int(v) for v in kept_np],
               "kept_share": share, "kept_share_all": float(kept_np.sum() / max(pred_np.sum(), 1)),
               "selector": selector.summary()}
    log.info("pseudo labels (%s): %d images, %.1f%% of pixels kept -> %s", selector.name, count,
             100 * summary["kept_share_all"], out_dir)
    return summary


def _write_png(path: Path, label: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(label, dtype=np.uint8), mode="L").save(path, format="PNG")


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


def plot_quality(reports: Mapping[str, Mapping[str, Any]], class_names: Sequence[str], path: str | Path) -> None:
    """Grouped bars per class, one colour per method: precision (top) and coverage (bottom); PNG, atomic.

    Undefined values (``None``) draw no bar.
    """
    from matplotlib.figure import Figure

    if not reports:
        raise UplrError("plot_quality: no reports to plot")
    names = list(class_names)
    for method, rep in reports.items():
        if len(rep["per_class"]) != len(names):
            raise UplrError(f"plot_quality: report {method!r} has {len(rep['per_class'])} classes but "
                            f"{len(names)} class names were given")
    fig = Figure(figsize=(max(8.0, 0.6 * len(names) * max(1, len(reports)) / 2), 7.5), constrained_layout=True)
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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
