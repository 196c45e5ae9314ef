"""Pseudo labels for self-training: UPLR's GMM assignment, the baselines it replaces, a streaming writer.

Every selector turns a softmax map into a uint8 label map (255 = ignore) after a ``fit`` on statistics
of the whole target set. The statistics are per-class histograms (:class:`PixelStats`), so memory does
not grow with the number of target images: ``pseudo_label_pass`` streams the set twice, once to
accumulate and fit, once to assign and write (uplr/method/pseudo_pass.py).

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

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from uplr.data.labels import IGNORE_LABEL
from uplr.errors import UplrError
from uplr.method.gmm import GmmParams, fit_gmm_1d
from uplr.method.gmm_rules import GMM_RULES, keep_mask, kept_share_from_histogram, monotone_threshold
from uplr.method.uncertainty import pixel_entropy

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
    a pixel keeps its argmax class by ``rule`` (uplr.method.gmm): ``posterior`` (the certainty mode's
    posterior is the larger) or ``monotone`` (I <= the boundary nearest above the certain mean)."""

    name = "gmm"

    def __init__(self, bins: int = 2048, max_iter: int = 500, tol: float = 1e-6, reg_covar: float = 1e-6,
                 rule: str = "posterior") -> None:
        super().__init__(bins)
        if rule not in GMM_RULES:
            raise UplrError(f"upst.gmm_rule must be one of {', '.join(GMM_RULES)}, got {rule!r}")
        self.max_iter, self.tol, self.reg_covar, self.rule = int(max_iter), float(tol), float(reg_covar), rule
        self.params: GmmParams | None = None
        self.thresholds: np.ndarray | None = None
        self.fit_shares: dict[str, Any] = {}

    def _fit(self, stats: PixelStats) -> None:
        self.params = fit_gmm_1d(stats.entropy_hist, max_iter=self.max_iter, tol=self.tol,
                                 reg_covar=self.reg_covar)
        self.thresholds = monotone_threshold(self.params)
        self.fit_shares = kept_share_from_histogram(stats.entropy_hist, self.params, self.rule)

    def _assign(self, prob: torch.Tensor) -> torch.Tensor:
        assert self.params is not None
        pred = prob.argmax(dim=1)
        keep = keep_mask(pixel_entropy(prob, dim=1), pred, self.params, self.rule, self.thresholds)
        return _keep(pred, keep)

    def summary(self) -> dict[str, Any]:
        """Parameters, and per class the fitted statistics' kept share (``kept_share``) and the share kept
        out of entropy order (``kept_above_rejected_share``), from the histogram; ``monotone_threshold``
        t_c (None where infinite: keep all / none)."""
        thr = None if self.thresholds is None else _per_class(self.thresholds)
        return {"method": self.name, "rule": self.rule, "bins": self.bins, "max_iter": self.max_iter,
                "tol": self.tol, "reg_covar": self.reg_covar, "monotone_threshold": thr, **self.fit_shares,
                "classes": self.params.to_json() if self.params else None}


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
