"""Target-side uncertainty statistics for target-guided uncertainty rectifying (UPLR, Sec. 3).

The model's softmax maps on the whole target set give a per-pixel normalised entropy; its mean over the
pixels predicted as each class is the class-level entropy I^c; the k classes with the largest I^c form the
set S_k whose source images are resampled (see :mod:`uplr.method.resampling`).

The statistics are streamed: :class:`ClassEntropyMeter` keeps C float64 sums and C int64 counts,
whatever the number of images, and its state can be summed across ``torchrun`` ranks.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from uplr.errors import UplrError

log = logging.getLogger(__name__)

NAN_POLICIES = ("first", "last")


def pixel_entropy(prob: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Normalised pixel entropy, in [0, 1]:

        I(i) = -1/log(C) * sum_c p(i,c) log p(i,c)

    ``C`` is the size of ``prob`` along ``dim`` (the class dimension), and ``0 * log 0 = 0``, so one-hot
    inputs give exactly 0 and no NaN. With C = 1 the entropy is 0 by convention (nothing is uncertain).
    Half-precision inputs are computed in float32. The class dimension is reduced away.
    """
    if prob.dim() == 0:
        raise UplrError("pixel_entropy: prob is a scalar; pass class probabilities with a class dimension")
    if prob.dtype in (torch.float16, torch.bfloat16):
        prob = prob.float()
    num_classes = prob.shape[dim]
    if num_classes < 1:
        raise UplrError(f"pixel_entropy: the class dimension {dim} of prob has size 0")
    if num_classes == 1:
        return torch.zeros_like(prob.select(dim, 0))
    ent = -torch.xlogy(prob, prob).sum(dim=dim) / math.log(num_classes)
    return ent.clamp_(0.0, 1.0)


class ClassEntropyMeter:
    """Streamed class-level entropy over a whole target set:

        I^c = 1/N_c * sum_x sum_i I(i) * 1[argmax_c' p(i,c') = c]

    with N_c the number of (valid) pixels predicted as c over all images. Only the per-class sums of
    I(i) (float64) and counts N_c (int64) are kept, so memory does not grow with the number of images.
    Ranks of a ``torchrun`` job each update their own meter and then call :meth:`all_reduce` once.
    """

    def __init__(self, num_classes: int) -> None:
        if int(num_classes) < 1:
            raise UplrError(f"ClassEntropyMeter: num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.reset()

    def reset(self) -> None:
        self._sums = np.zeros(self.num_classes, dtype=np.float64)
        self._counts = np.zeros(self.num_classes, dtype=np.int64)

    @torch.no_grad()
    def update(self, prob: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        """Add softmax maps ``prob`` (N x C x H x W, or C x H x W for one image).

        ``valid`` (N x H x W or H x W, bool) marks the pixels to count, e.g. to drop padding; pixels
        outside it are ignored. Ties in the argmax go to the lower class id (torch.argmax).
        """
        if prob.dim() == 3:
            prob = prob.unsqueeze(0)
            if valid is not None and valid.dim() == 2:
                valid = valid.unsqueeze(0)
        if prob.dim() != 4:
            raise UplrError(
                "ClassEntropyMeter.update: prob must be N x C x H x W or C x H x W, "
                f"got shape {tuple(prob.shape)}"
            )
        if prob.shape[1] != self.num_classes:
            raise UplrError(
                f"ClassEntropyMeter.update: prob has {prob.shape[1]} classes but the meter was built for "
                f"{self.num_classes}; make the model's class count match num_classes"
            )
        ent = pixel_entropy(prob, dim=1).to(torch.float64)
        pred = prob.argmax(dim=1)
        if valid is not None:
            valid = valid.to(device=pred.device, dtype=torch.bool)
            if valid.shape != pred.shape:
                raise UplrError(
                    f"ClassEntropyMeter.update: valid mask has shape {tuple(valid.shape)}, expected "
                    f"{tuple(pred.shape)} (N x H x W)"
                )
            # Class id C is out of range: those pixels fall into no class below.
            pred = torch.where(valid, pred, torch.full_like(pred, self.num_classes))
        # A per-class masked sum instead of index_add/bincount with weights: those use atomics on CUDA
        # and are not deterministic; C reductions are cheap next to the forward pass.
        sums = torch.stack([torch.where(pred == c, ent, 0.0).sum() for c in range(self.num_classes)])
        counts = torch.bincount(pred.flatten(), minlength=self.num_classes + 1)[: self.num_classes]
        self._sums += sums.cpu().numpy()
        self._counts += counts.cpu().numpy().astype(np.int64)

    @property
    def counts(self) -> np.ndarray:
        """N_c: pixels predicted as each class so far (int64, a copy)."""
        return self._counts.copy()

    @property
    def sums(self) -> np.ndarray:
        """sum of I(i) over the pixels predicted as each class so far (float64, a copy)."""
        return self._sums.copy()

    @property
    def value(self) -> np.ndarray:
        """I^c per class (float64); NaN for a class never predicted (N_c = 0)."""
        out = np.full(self.num_classes, np.nan, dtype=np.float64)
        seen = self._counts > 0
        out[seen] = self._sums[seen] / self._counts[seen]
        return out

    def merge(self, other: ClassEntropyMeter) -> ClassEntropyMeter:
        """Add another meter's statistics into this one (e.g. from another data shard); returns self."""
        if other.num_classes != self.num_classes:
            raise UplrError(
                f"ClassEntropyMeter.merge: cannot merge a {other.num_classes}-class meter into a "
                f"{self.num_classes}-class one"
            )
        self._sums += other._sums
        self._counts += other._counts
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "sums": self._sums.tolist(), "counts": self._counts.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["num_classes"]) != self.num_classes:
            raise UplrError(
                f"ClassEntropyMeter.load_state_dict: state has {state['num_classes']} classes, "
                f"meter has {self.num_classes}"
            )
        self._sums = np.asarray(state["sums"], dtype=np.float64).copy()
        self._counts = np.asarray(state["counts"], dtype=np.int64).copy()

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ClassEntropyMeter:
        meter = cls(int(state["num_classes"]))
        meter.load_state_dict(state)
        return meter

    def all_reduce(self) -> ClassEntropyMeter:
        """Sum the statistics over all ranks (in place) when torch.distributed is initialised; returns self.

        Call it exactly once, after every rank has seen its share of the images: calling it twice
        counts everything world_size times. Without a process group it does nothing.
        """
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()):
            return self
        device = torch.device("cpu")
        if dist.get_backend() == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        sums = torch.from_numpy(self._sums).to(device)
        counts = torch.from_numpy(self._counts).to(device)
        dist.all_reduce(sums, op=dist.ReduceOp.SUM)
        dist.all_reduce(counts, op=dist.ReduceOp.SUM)
        self._sums = sums.cpu().numpy().astype(np.float64)
        self._counts = counts.cpu().numpy().astype(np.int64)
        return self


def top_k_uncertain(
    class_entropy: Sequence[float] | np.ndarray,
    k: int,
    classes: Sequence[int] | None = None,
    nan_policy: str = "first",
) -> list[int]:
    """S_k: the ``k`` classes with the largest class-level entropy I^c, most uncertain first.

    Ties are broken by the lower class id. ``classes`` restricts the candidates; ``None`` means every
    class. TGAA passes :func:`uplr.method.tgaa.tgaa_candidates`: the classes present in the source
    and evaluated (e.g. 16 on SYNTHIA), so a class resampling cannot touch never takes a slot. ``k``
    larger than the number of candidates returns them all.

    A class that was never predicted on the target has I^c = NaN. The paper does not say what to do
    with it; our default ``nan_policy="first"`` ranks such classes as the MOST uncertain, because the
    model never commits to them on the target, which is the case resampling should help. With
    ``nan_policy="last"`` they rank after every measured class instead. (What that means for each
    ``tgaa.weights`` choice: :func:`uplr.method.tgaa.tgaa_weights`.)
    """
    if nan_policy not in NAN_POLICIES:
        raise UplrError(f"top_k_uncertain: nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    k = int(k)
    if k < 0:
        raise UplrError(f"top_k_uncertain: k must be >= 0, got {k}")
    values = np.asarray(class_entropy, dtype=np.float64).reshape(-1)
    candidates = range(len(values)) if classes is None else [int(c) for c in classes]
    for c in candidates:
        if not 0 <= c < len(values):
            raise UplrError(f"top_k_uncertain: class id {c} is outside 0..{len(values) - 1}")
    nan_group = 0 if nan_policy == "first" else 1

    def key(c: int) -> tuple[int, float, int]:
        v = values[c]
        if np.isnan(v):
            return (nan_group, 0.0, c)
        return (1 - nan_group, -v, c)

    return sorted(dict.fromkeys(candidates), key=key)[:k]
