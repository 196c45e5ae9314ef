"""TGAA's source sampling weights for one stage: S_k from the target's class entropy, then the weights.

One entry point, :func:`tgaa_weights`, joins :mod:`uplr.method.uncertainty` (S_k = the top-k uncertain
classes) and :mod:`uplr.method.resampling` (the soft-balance chain, with S_k boosted or alone); it lives
here so that neither of those modules imports the other.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from uplr.errors import UplrError
from uplr.method.resampling import _class_mask, class_rate_vs_uniform, soft_balance_weights
from uplr.method.uncertainty import top_k_uncertain

log = logging.getLogger(__name__)


#: ``tgaa.weights`` values (see :mod:`uplr.method.resampling`).
TGAA_WEIGHTS = ("sr_boost_sk", "sk_only")


def tgaa_candidates(counts: np.ndarray, evaluated: Sequence[int] | None = None) -> list[int]:
    """The classes that may take an S_k slot: present in the source (Σ_x N_c(x) > 0) and, when
    ``evaluated`` is given, in the evaluated class set (e.g. SYNTHIA's 16). Ascending class ids.

    A class without source pixels cannot be resampled (every weight ignores it), so ranking it would only
    waste a slot: on SYNTHIA terrain, truck and train would otherwise take three of five.
    """
    counts = np.asarray(counts)
    if counts.ndim != 2:
        raise UplrError(f"tgaa_candidates: counts must be n_images x C, got shape {counts.shape}")
    present = counts.sum(axis=0) > 0
    keep = present & _class_mask(counts.shape[1], evaluated)
    return [int(c) for c in np.flatnonzero(keep)]


def tgaa_weights(
    counts: np.ndarray,
    class_entropy: Sequence[float] | np.ndarray,
    cfg_tgaa,
    cfg_resample,
    candidates: Sequence[int] | None = None,
) -> tuple[np.ndarray, list[int], dict]:
    """One TGAA stage's source sampling weights: rank S_k, then weight the source images.

    ``counts``: n_images x C source pixel counts N_c(x); ``class_entropy``: I^c on the target (NaN: class
    never predicted); ``cfg_tgaa``: ``k``, ``nan_policy``, ``weights``, ``boost`` (:class:`~uplr.config.TGAAConfig`);
    ``cfg_resample``: ``lam``, ``alpha``, ``mu``, ``mu_quantile`` (:class:`~uplr.config.ResampleConfig`);
    ``candidates``: the evaluated class set (None: every class); classes absent from the source are always
    left out (:func:`tgaa_candidates`).

    1. S_k = :func:`~uplr.method.uncertainty.top_k_uncertain` over the candidates (``nan_policy``);
    2. ``weights``:

       * ``sr_boost_sk``: p̃_c = :func:`boosted_class_prob` (p_c, S_k, ``boost``), p_i over all classes
         with p̃_c, then p̂_i (SR's chain with S_k boosted);
       * ``sk_only``: p_i over the classes of S_k only with SR's p_c (the paper read literally), then p̂_i.

    ``nan_policy`` (a class never predicted on the target, I^c = NaN) acts on the ranking, the same for
    both weightings: ``first`` puts such a class (if it has source pixels) at the top of S_k — with
    ``sr_boost_sk`` its source images get the boost on top of SR's balance, with ``sk_only`` they are among
    the only images drawn above the floor; ``last`` ranks it after every measured class, so it enters S_k
    only when fewer than k classes were predicted.

    Returns (p̂ per image, S_k most uncertain first, info) with info JSON-safe: the mode, boost, S_k,
    candidates, μ, α, p_i_nonzero, and the per-class drawing rate relative to uniform sampling
    (:func:`class_rate_vs_uniform`, None for a class without source pixels).
    """
    mode = cfg_tgaa.weights
    if mode not in TGAA_WEIGHTS:
        raise UplrError(f"tgaa.weights must be one of {', '.join(TGAA_WEIGHTS)}, got {mode!r}")
    counts = np.asarray(counts)
    cands = tgaa_candidates(counts, candidates)
    ent = np.asarray(class_entropy, dtype=np.float64).reshape(-1)
    if ent.size != counts.shape[1]:
        raise UplrError(f"tgaa_weights: {ent.size} class entropies but counts has {counts.shape[1]} classes")
    s_k = top_k_uncertain(ent, cfg_tgaa.k, classes=cands, nan_policy=cfg_tgaa.nan_policy)
    weights, info = weights_for_s_k(counts, s_k, cfg_tgaa, cfg_resample)
    log.info("TGAA weights (%s): S_k = %s over %d candidate classes", mode, s_k, len(cands))
    return weights, s_k, {**info, "candidates": cands}


def weights_for_s_k(counts: np.ndarray, s_k: Sequence[int], cfg_tgaa, cfg_resample) -> tuple[np.ndarray, dict]:
    """p̂ per source image for a given S_k under ``cfg_tgaa.weights`` (step 2 of :func:`tgaa_weights`; the
    rows that continue +TGAA keep its last S_k and call this), and a JSON-safe info dict."""
    mode = cfg_tgaa.weights
    if mode not in TGAA_WEIGHTS:
        raise UplrError(f"tgaa.weights must be one of {', '.join(TGAA_WEIGHTS)}, got {mode!r}")
    counts = np.asarray(counts)
    s_k = [int(c) for c in s_k]
    r = cfg_resample
    if mode == "sk_only":
        sb = soft_balance_weights(counts, r.lam, r.alpha, r.mu, classes=s_k, mu_quantile=r.mu_quantile)
    else:
        sb = soft_balance_weights(counts, r.lam, r.alpha, r.mu, classes=None, mu_quantile=r.mu_quantile,
                                  boost_classes=s_k, boost=cfg_tgaa.boost)
    rate = class_rate_vs_uniform(counts, sb.p_hat)
    info = {
        "weights_mode": mode,
        "boost": float(cfg_tgaa.boost) if mode == "sr_boost_sk" else None,
        "S_k": s_k,
        "mu": sb.mu,
        "alpha": sb.alpha,
        "p_i_nonzero": int((sb.p_i > 0).sum()),
        "rate_vs_uniform": [None if np.isnan(v) else float(v) for v in rate],
    }
    return sb.p_hat, info
