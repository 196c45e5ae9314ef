"""Keep rules for UPLR's per-class entropy GMM (``upst.gmm_rule``; the mixture itself: :mod:`uplr.method.gmm`).

* ``posterior`` (the paper's): keep a pixel when the certainty (lower-mean) component has the larger
  posterior, log_odds_c(I) > 0 (:func:`uplr.method.gmm.certainty_posterior_wins`);
* ``monotone`` (ours): keep I <= t_c, the decision boundary nearest above the certain mean
  (:func:`monotone_threshold`), so a kept pixel is never more uncertain than a rejected one.

:func:`kept_share_from_histogram` reports, per class, what a rule keeps of the fitted statistics and how
much of it is kept out of entropy order.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from uplr.errors import UplrError
from uplr.method.gmm import GmmParams, _quadratic_coefficients, certainty_posterior_wins

#: ``upst.gmm_rule`` values (see the module docstring).
GMM_RULES = ("posterior", "monotone")


def _crossings(a: float, b: float, d: float) -> list[tuple[float, float]]:
    """Real roots r of a x^2 + b x + d = 0 where the sign changes, with the slope 2 a r + b there.

    Stable form: q = -(b + sign(b) sqrt(b^2 - 4 a d)) / 2, roots q / a and d / q (no cancellation when a
    is tiny, i.e. nearly equal variances: one root then runs off to +-inf and the other is ~ -d / b).
    A double root (no sign change) and a constant give none.
    """
    if a == 0.0:
        return [] if b == 0.0 else [(-d / b, b)]
    disc = b * b - 4.0 * a * d
    if not disc > 0.0:
        return []
    q = -0.5 * (b + math.copysign(math.sqrt(disc), b))
    roots = {q / a} | ({d / q} if q != 0.0 else set())
    return sorted((r, 2.0 * a * r + b) for r in roots if math.isfinite(r))


def monotone_threshold(params: GmmParams) -> np.ndarray:
    """Per class, the entropy t_c of the ``monotone`` keep rule (keep a pixel of class c when I <= t_c):

        t_c = min{ r > mu_neg : log_odds(r) = 0, log_odds falls through 0 at r }    (+inf if none)

    with log_odds(I) = a_c I^2 + b_c I + d_c (:func:`certainty_log_odds`): the decision boundary nearest
    above the certain mean, where the certainty mode stops winning. Below it every pixel is kept, even
    where the other component wins at very low entropy; above it none, even where the certainty
    component's tail wins again. So a kept pixel is never more uncertain than a rejected one.

    A fit where the certainty mode does not win at its own mean (log_odds(mu_neg) <= 0; a degenerate
    mixture) takes the largest falling crossing below mu_neg, else the smallest one above it, else -inf
    (the certainty mode wins nowhere: keep none, as the posterior rule does). Single-mode classes: +inf
    (keep all); never-fitted classes: -inf (keep none). float64, shape (C,).
    """
    coef = _quadratic_coefficients(params)[:-1]
    out = np.empty(params.num_classes)
    for c in range(params.num_classes):
        if not params.fitted[c]:
            out[c] = -np.inf
            continue
        if params.single_mode[c]:
            out[c] = np.inf
            continue
        a, b, d = (float(v) for v in coef[c])
        m = float(params.means[c, 0])
        falling = [r for r, slope in _crossings(a, b, d) if slope < 0]
        if (a * m + b) * m + d > 0:
            above = [r for r in falling if r > m]
            out[c] = above[0] if above else np.inf
        else:
            below = [r for r in falling if r < m]
            above = [r for r in falling if r >= m]
            out[c] = below[-1] if below else (above[0] if above else -np.inf)
    return out


def keep_mask(entropy: torch.Tensor | np.ndarray, pred_class: torch.Tensor | np.ndarray, params: GmmParams,
              rule: str = "posterior", thresholds: np.ndarray | None = None) -> torch.Tensor | np.ndarray:
    """Keep mask of a GMM rule for pixels with entropy I and predicted class c:

        posterior:  log_odds_c(I) > 0            (:func:`certainty_posterior_wins`)
        monotone:   I <= t_c                     (:func:`monotone_threshold`; pass ``thresholds`` to
                                                  reuse them across images)

    Class ids outside 0..C-1 are never kept. Returns the kind (torch/numpy) of ``entropy``.
    """
    if rule not in GMM_RULES:
        raise UplrError(f"upst.gmm_rule must be one of {', '.join(GMM_RULES)}, got {rule!r}")
    if rule == "posterior":
        return certainty_posterior_wins(entropy, pred_class, params)
    ent = torch.as_tensor(entropy)
    pred = torch.as_tensor(pred_class, device=ent.device).long()
    t = monotone_threshold(params) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    table = torch.as_tensor(np.append(t, -np.inf), device=ent.device)  # last row: unknown class ids
    num = params.num_classes
    idx = torch.where((pred >= 0) & (pred < num), pred, torch.full_like(pred, num))
    keep = ent.to(torch.float64) <= table[idx]
    return keep.cpu().numpy() if isinstance(entropy, np.ndarray) else keep


def kept_share_from_histogram(hist: np.ndarray | torch.Tensor, params: GmmParams, rule: str = "posterior",
                              value_range: tuple[float, float] = (0.0, 1.0)) -> dict[str, list[float | None]]:
    """Per class, from a C x B entropy histogram (bin centres stand for their pixels):

    * ``kept_share``: the share of the class's pixels the rule keeps;
    * ``kept_above_rejected_share``: the share of the class's pixels that are kept although a rejected
      pixel of the class has a lower entropy (0 for ``monotone`` by construction; what ``posterior``
      keeps out of order).

    None for a class without pixels.
    """
    h = torch.as_tensor(hist).cpu().numpy().astype(np.float64)
    lo, hi = value_range
    centres = lo + (np.arange(h.shape[1]) + 0.5) * (hi - lo) / h.shape[1]
    grid = np.broadcast_to(centres, h.shape)
    cls = np.broadcast_to(np.arange(h.shape[0])[:, None], h.shape)
    keep = keep_mask(np.ascontiguousarray(grid), np.ascontiguousarray(cls), params, rule)
    total = h.sum(axis=1)
    rejected = (h > 0) & ~keep
    first_rejected = np.where(rejected.any(axis=1), rejected.argmax(axis=1), h.shape[1])
    above = keep & (np.arange(h.shape[1])[None, :] > first_rejected[:, None])
    share, disorder = [], []
    for c in range(h.shape[0]):
        if total[c] <= 0:
            share.append(None)
            disorder.append(None)
            continue
        share.append(float((h[c] * keep[c]).sum() / total[c]))
        disorder.append(float((h[c] * above[c]).sum() / total[c]))
    return {"kept_share": share, "kept_above_rejected_share": disorder}
