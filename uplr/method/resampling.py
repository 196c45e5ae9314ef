"""Soft-balance resampling of source images (SR, and the source side of TGAA; UPLR Sec. 3).

Chain: per-image class pixel counts -> class probability p_c -> image probability p_i (restricted to
a class set S: all classes for SR, the top-k uncertain target classes S_k for TGAA) -> rectified
p̂_i; source images are then drawn with probability proportional to p̂_i.

TGAA's weights (:func:`uplr.method.tgaa.tgaa_weights`, ``tgaa.weights``) come in two forms:

* ``sk_only``: the paper's formula read literally, p_i over the classes of S_k only; images without a
  class of S_k fall to the 0.1 floor of p̂, so SR's balance of every other rare class is dropped;
* ``sr_boost_sk`` (default, ours): SR's p_i over all classes, with p_c of the classes in S_k multiplied
  by ``tgaa.boost`` (:func:`boosted_class_prob`), so TGAA adds to SR instead of replacing it.

S_k's candidates are the classes present in the source (and in the evaluated class set): a class with no
source pixel cannot be resampled, so it never takes a slot (:func:`tgaa_candidates`).

The paper gives no values for λ, α, μ. p_i is tiny and depends on the dataset size (p_c ∝ 1/N_c),
so a fixed α means nothing across datasets: :func:`auto_mu_alpha` derives μ and α from the p_i
themselves. Those are this suite's defaults, not the paper's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from uplr.data.labels import IGNORE_LABEL
from uplr.errors import UplrError

log = logging.getLogger(__name__)

#: p̂ = 0.1 + sigmoid(z); z = ±ln 9 gives sigmoid 0.9 / 0.1, i.e. p̂ = 1.0 / 0.2.
LN9 = math.log(9.0)


def image_class_counts(label: np.ndarray, num_classes: int = 19, ignore: int = IGNORE_LABEL) -> np.ndarray:
    """N_c(x): pixels of each class in one train-id label map (int64, length ``num_classes``).

    Pixels equal to ``ignore`` are not counted; any other value outside 0..num_classes-1 is an error
    (usually a label that was not converted from raw ids to train ids).
    """
    label = np.asarray(label)
    if not np.issubdtype(label.dtype, np.integer):
        raise UplrError(f"image_class_counts: label must be an integer array, got dtype {label.dtype}")
    values = label[label != ignore].astype(np.int64, copy=False).ravel()
    if values.size and (values.min() < 0 or values.max() >= num_classes):
        bad = sorted(set(np.unique(values[(values < 0) | (values >= num_classes)]).tolist()))[:10]
        raise UplrError(
            f"image_class_counts: label holds values {bad} outside 0..{num_classes - 1} (ignore={ignore}); "
            "convert the label to train ids first (see LABEL_ENCODINGS.md)"
        )
    return np.bincount(values, minlength=num_classes).astype(np.int64)


def _check_lam(lam: float) -> float:
    lam = float(lam)
    if not math.isfinite(lam):
        raise UplrError(f"soft-balance resampling: lambda must be a finite number, got {lam}")
    return lam


def class_sampling_prob(N_c: Sequence[float] | np.ndarray, lam: float) -> np.ndarray:  # noqa: N803
    """Class probability over the source set:

        p_c = N_c^λ / Σ_c' N_c'^λ * 1/N_c

    N_c: pixels of class c in the whole source set. A class with N_c = 0 gets p_c = 0 and is left out of
    the sum (this only matters for λ <= 0, where 0^λ would be 1 or infinite). λ = 1 gives every pixel
    the same weight 1/Σ N; λ = 0 gives every present class the same total weight 1/C'.
    Computed in log space, so any finite λ is safe from overflow.
    """
    lam = _check_lam(lam)
    n = np.asarray(N_c, dtype=np.float64).reshape(-1)
    if np.any(n < 0) or not np.all(np.isfinite(n)):
        raise UplrError("class_sampling_prob: class pixel counts N_c must be finite and >= 0")
    out = np.zeros_like(n)
    present = n > 0
    if not present.any():
        return out
    logn = np.log(n[present])
    a = lam * logn
    log_norm = a.max() + np.log(np.exp(a - a.max()).sum())
    out[present] = np.exp(a - log_norm - logn)
    return out


def _class_mask(num_classes: int, classes: Sequence[int] | None) -> np.ndarray:
    mask = np.zeros(num_classes, dtype=bool)
    if classes is None:
        mask[:] = True
        return mask
    for c in classes:
        c = int(c)
        if not 0 <= c < num_classes:
            raise UplrError(f"soft-balance resampling: class id {c} is outside 0..{num_classes - 1}")
        mask[c] = True
    return mask


def image_sampling_prob(
    counts: np.ndarray,
    p_c: Sequence[float] | np.ndarray,
    lam: float,
    classes: Sequence[int] | None = None,
) -> np.ndarray:
    """Image probability, one value per source image:

        p_i(x) = Σ_{ĉ ∈ image ∩ S} [ N_ĉ(x)^λ / Σ_{c' ∈ image ∩ S} N_c'(x)^λ ] * p_ĉ

    ``counts``: n_images x C pixel counts N_c(x); a class is "in the image" when N_c(x) > 0.
    ``classes``: the set S (``None``: all classes, the SR row; TGAA passes S_k). ``p_c`` is the class
    probability of the whole source set (:func:`class_sampling_prob`), not restricted to S.
    Images holding no class of S get p_i = 0.
    """
    lam = _check_lam(lam)
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2:
        raise UplrError(f"image_sampling_prob: counts must be n_images x C, got shape {counts.shape}")
    p_c = np.asarray(p_c, dtype=np.float64).reshape(-1)
    if p_c.shape[0] != counts.shape[1]:
        raise UplrError(
            f"image_sampling_prob: p_c has {p_c.shape[0]} classes but counts has {counts.shape[1]} columns"
        )
    mask = (counts > 0) & _class_mask(counts.shape[1], classes)[None, :]
    # Softmax of λ log N_c(x) over the classes in image ∩ S, i.e. N^λ / Σ N^λ without overflow.
    with np.errstate(divide="ignore"):
        a = np.where(mask, lam * np.log(np.where(mask, counts, 1.0)), -np.inf)
    row_max = a.max(axis=1, keepdims=True)
    has_any = mask.any(axis=1)
    row_max[~has_any] = 0.0
    w = np.where(mask, np.exp(a - row_max), 0.0)
    denom = w.sum(axis=1)
    denom[~has_any] = 1.0
    return (w @ p_c) / denom


def rectified_image_prob(p_i: np.ndarray | float, alpha: float, mu: float) -> np.ndarray:
    """Rectified image probability:

        p̂_i = 0.1 + 1 / (1 + exp(-α (p_i - μ)))

    so p̂ lies in (0.1, 1.1) and p̂ = 0.6 at p_i = μ. Applied to every image, including those with
    p_i = 0 (the 0.1 floor keeps them drawable). Evaluated without overflow for any finite α.
    """
    alpha, mu = float(alpha), float(mu)
    if not (math.isfinite(alpha) and math.isfinite(mu)):
        raise UplrError(f"rectified_image_prob: alpha and mu must be finite, got alpha={alpha}, mu={mu}")
    z = alpha * (np.asarray(p_i, dtype=np.float64) - mu)
    with np.errstate(under="ignore"):
        e = np.exp(-np.abs(z))  # in (0, 1]: never overflows; underflow to 0 is harmless
    sig = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return 0.1 + sig


def auto_mu_alpha(
    p_i: np.ndarray,
    mu_quantile: float = 0.5,
    spread: tuple[float, float] = (0.1, 0.9),
) -> tuple[float, float]:
    """Our default μ and α for :func:`rectified_image_prob` (the paper gives neither).

    Over the images with p_i > 0 (those holding some class of S):

    - μ = the ``mu_quantile`` quantile of p_i (default the median), so p̂ = 0.6 there;
    - α = 2 ln 9 / (q_hi - q_lo), with q_lo, q_hi the ``spread`` quantiles of p_i (default 10% and 90%).
      With μ midway between them, p̂ goes from 0.2 at q_lo to 1.0 at q_hi: the central spread of p_i
      lies on the sigmoid's slope instead of its flat tails. This makes α scale with 1/p_i, so the same
      setting works for any dataset size.

    Quantiles are numpy's linear interpolation. Degenerate inputs give finite values, never NaN:
    if q_hi = q_lo, the full range max - min is used; if all p_i > 0 are equal, α = 2 ln 9 / μ
    (every such image then gets p̂ = 0.6 anyway); if no p_i > 0, (μ, α) = (0, 1), so p̂ = 0.6 for
    every image (uniform sampling).
    """
    lo_q, hi_q = (float(q) for q in spread)
    if not (0.0 <= mu_quantile <= 1.0):
        raise UplrError(f"auto_mu_alpha: mu_quantile must be in [0, 1], got {mu_quantile}")
    if not (0.0 <= lo_q < hi_q <= 1.0):
        raise UplrError(f"auto_mu_alpha: spread must be two quantiles 0 <= lo < hi <= 1, got {spread}")
    p = np.asarray(p_i, dtype=np.float64).reshape(-1)
    pos = p[np.isfinite(p) & (p > 0)]
    if pos.size == 0:
        log.warning("auto_mu_alpha: no image has p_i > 0; using mu=0, alpha=1 (uniform sampling)")
        return 0.0, 1.0
    mu = float(np.quantile(pos, mu_quantile))
    q_lo, q_hi = (float(v) for v in np.quantile(pos, [lo_q, hi_q]))
    for scale in (q_hi - q_lo, float(pos.max() - pos.min()), abs(mu)):
        if scale > 0:
            alpha = 2.0 * LN9 / scale
            if math.isfinite(alpha):
                return mu, alpha
    return mu, 1.0


def boosted_class_prob(
    p_c: Sequence[float] | np.ndarray,
    N_c: Sequence[float] | np.ndarray,  # noqa: N803
    boosted: Sequence[int],
    boost: float,
) -> np.ndarray:
    """Class probability with the classes of S_k boosted (ours; the paper's TGAA has no such factor):

        p̃_c = m_c p_c / Σ_c' m_c' p_c' N_c',   m_c = boost if c ∈ S_k else 1

    p_c (:func:`class_sampling_prob`) is a per-pixel probability, Σ_c p_c N_c = 1; the normalisation keeps
    that (Σ_c p̃_c N_c = 1), so p_i keeps SR's scale and a fixed α, μ mean the same with or without the
    boost (the automatic α, μ do not depend on the scale anyway). boost = 1 gives SR's p_c back.
    """
    boost = float(boost)
    if not (math.isfinite(boost) and boost > 0):
        raise UplrError(f"tgaa.boost must be a finite number > 0 (1 = SR's weights), got {boost}")
    p = np.asarray(p_c, dtype=np.float64).reshape(-1)
    n = np.asarray(N_c, dtype=np.float64).reshape(-1)
    if p.shape != n.shape:
        raise UplrError(f"boosted_class_prob: p_c has {p.size} classes, N_c {n.size}")
    m = np.where(_class_mask(p.size, boosted), boost, 1.0)
    mass = float((m * p * n).sum())
    return m * p / mass if mass > 0 else np.zeros_like(p)


def class_rate_vs_uniform(counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """How often each class's pixels are drawn under ``weights`` relative to uniform image sampling:

        r_c = (Σ_x w_x N_c(x) / Σ_x w_x) / (Σ_x N_c(x) / n)

    r_c = 1: as often as uniform sampling; NaN for a class with no source pixel. (A diagnostic, logged
    per TGAA stage: it shows which classes a weighting favours.)
    """
    counts = np.asarray(counts, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if counts.ndim != 2 or counts.shape[0] != w.size:
        raise UplrError(f"class_rate_vs_uniform: counts {counts.shape} and {w.size} weights do not match")
    if not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
        raise UplrError("class_rate_vs_uniform: weights must be finite, >= 0 and not all 0")
    drawn = (w @ counts) / w.sum()
    uniform = counts.sum(axis=0) / counts.shape[0]
    out = np.full(counts.shape[1], np.nan)
    ok = uniform > 0
    out[ok] = drawn[ok] / uniform[ok]
    return out


@dataclass
class SoftBalanceWeights:
    """Every intermediate of the soft-balance chain, for logging (e.g. μ and α to MLflow)."""

    p_c: np.ndarray
    p_i: np.ndarray
    p_hat: np.ndarray
    mu: float
    alpha: float


def soft_balance_weights(
    counts: np.ndarray,
    lam: float,
    alpha: float | None = None,
    mu: float | None = None,
    classes: Sequence[int] | None = None,
    mu_quantile: float = 0.5,
    spread: tuple[float, float] = (0.1, 0.9),
    boost_classes: Sequence[int] | None = None,
    boost: float = 1.0,
) -> SoftBalanceWeights:
    """The whole chain from an n_images x C count matrix; ``alpha``/``mu`` = None: :func:`auto_mu_alpha`.

    ``classes``: the set S of p_i (None: all classes). ``boost_classes``: p_c of these classes is
    multiplied by ``boost`` (:func:`boosted_class_prob`) before p_i; the returned ``p_c`` is the boosted one.
    """
    counts = np.asarray(counts)
    if counts.ndim != 2:
        raise UplrError(f"soft_balance_weights: counts must be n_images x C, got shape {counts.shape}")
    n_c = counts.sum(axis=0, dtype=np.float64)
    p_c = class_sampling_prob(n_c, lam)
    if boost_classes is not None:
        p_c = boosted_class_prob(p_c, n_c, boost_classes, boost)
    p_i = image_sampling_prob(counts, p_c, lam, classes)
    if alpha is None or mu is None:
        auto_mu, auto_alpha = auto_mu_alpha(p_i, mu_quantile=mu_quantile, spread=spread)
        mu = auto_mu if mu is None else mu
        alpha = auto_alpha if alpha is None else alpha
    p_hat = rectified_image_prob(p_i, alpha, mu)
    log.info(
        "soft-balance resampling: %d images, %d with a class of S, lambda=%g, mu=%.4g, alpha=%.4g",
        len(p_i),
        int((p_i > 0).sum()),
        lam,
        mu,
        alpha,
    )
    return SoftBalanceWeights(p_c=p_c, p_i=p_i, p_hat=p_hat, mu=float(mu), alpha=float(alpha))
