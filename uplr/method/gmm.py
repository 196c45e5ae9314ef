"""Two-component 1-D Gaussian mixtures on pixel entropy, one per class (UPLR's pseudo-label assignment).

For each class c the entropies I of the target pixels predicted as c are modelled as

    P_c(I) = w_neg N(I; mu_neg, s_neg) + w_pos N(I; mu_pos, s_pos)

fitted by EM with uniform initial weights. The component with the lower mean is the *certainty mode*.
Two keep rules (``upst.gmm_rule``):

* ``posterior`` (the paper: "pixels belonging to the certainty mode are assigned as pseudo labels"): a
  pixel keeps its predicted class when its posterior for the certainty mode is the larger one
  (:func:`certainty_posterior_wins`). The set this keeps need not be an entropy interval: when the
  certainty component is the wider one, its tail also wins at high entropy (a class fitted with sd 0.157
  vs 0.027 kept pixels with I > 0.69); when it is the narrower one, the other component can win at I ~ 0;
* ``monotone`` (ours): keep I <= t_c, with t_c the decision boundary nearest above the certain mean
  (:func:`uplr.method.gmm_rules.monotone_threshold`): never keeps a pixel more uncertain than a rejected
  pixel of its class. Both rules live in :mod:`uplr.method.gmm_rules`.

All classes are fitted at once, vectorised: from a C x B histogram of bin counts (weighted EM on the bin
centres, which is what keeps memory independent of the number of target images) or from raw values
(tests, small inputs). The EM follows scikit-learn's ``GaussianMixture`` step for step (same M-step with
``reg_covar`` added to each variance and ``10 * eps`` added to each component mass, same stopping rule:
the change of the mean log-likelihood below ``tol``), so the two agree when started from the same point.

Index 0 of every returned parameter array is the certainty mode (lower mean), index 1 the other one.
In the docstrings ``s`` is a *variance* (scikit-learn's convention), not a standard deviation.

Degenerate classes (defined behaviour, never NaN):

* no pixels: ``fitted=False``; the parameters are zeros/ones placeholders, JSON gives ``None``, and a
  pixel of that class (there should be none) is never kept;
* fewer than two distinct values (one pixel, or all entropies equal, or all in one histogram bin):
  ``single_mode=True``; there is nothing to separate, so every pixel of the class is kept (the class is
  certain as a whole; dropping it entirely would erase a class from the pseudo labels);
* EM that collapses one component to less than half a pixel of mass: also ``single_mode=True``, keep all.
* two or more distinct values: a normal fit (two distinct values end with one component on each).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from uplr.errors import UplrError

log = logging.getLogger(__name__)

_EPS10 = 10 * np.finfo(np.float64).eps  # scikit-learn adds this to every component mass
_LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class GmmParams:
    """Per-class mixture parameters; arrays are (C, 2) with index 0 = certainty mode (lower mean)."""

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    fitted: np.ndarray  # (C,) bool: the class had at least one pixel
    single_mode: np.ndarray  # (C,) bool: nothing to separate, every pixel of the class is kept
    counts: np.ndarray  # (C,) float64: pixels (total weight) the class was fitted on
    n_iter: np.ndarray  # (C,) int64: EM iterations run
    converged: np.ndarray  # (C,) bool: the log-likelihood change fell below tol (True for non-EM classes)
    init_means: np.ndarray  # (C, 2): where EM started (for comparisons with other implementations)
    init_variances: np.ndarray  # (C, 2)

    @property
    def num_classes(self) -> int:
        return int(self.weights.shape[0])

    def to_json(self) -> list[dict[str, Any]]:
        """One JSON-safe dict per class; ``None`` for the parameters of a class that was never seen."""
        out = []
        for c in range(self.num_classes):
            entry: dict[str, Any] = {
                "class": c,
                "fitted": bool(self.fitted[c]),
                "single_mode": bool(self.single_mode[c]),
                "pixels": int(round(float(self.counts[c]))),
                "n_iter": int(self.n_iter[c]),
                "converged": bool(self.converged[c]),
            }
            for key, arr in (("weights", self.weights), ("means", self.means), ("variances", self.variances)):
                entry[key] = [float(v) for v in arr[c]] if self.fitted[c] else None
            out.append(entry)
        return out


def gmm_density(x: np.ndarray | float, weights: Sequence[float], means: Sequence[float],
                variances: Sequence[float]) -> np.ndarray:
    """Mixture density of one class (UPLR's per-class entropy model):

        P_c(I) = w_neg N(I; mu_neg, s_neg) + w_pos N(I; mu_pos, s_pos),
        N(I; mu, s) = exp(-(I - mu)^2 / (2 s)) / sqrt(2 pi s)      (s a variance)
    """
    x = np.asarray(x, dtype=np.float64)
    w, mu, var = (np.asarray(a, dtype=np.float64) for a in (weights, means, variances))
    dens = np.exp(-0.5 * (x[..., None] - mu) ** 2 / var) / np.sqrt(2 * math.pi * var)
    return (w * dens).sum(axis=-1)


def certainty_posterior(entropy: torch.Tensor | np.ndarray, pred_class: torch.Tensor | np.ndarray,
                        params: GmmParams) -> torch.Tensor | np.ndarray:
    """Posterior of the certainty mode for each pixel, with the parameters of its predicted class c:

        P(neg | I) = w_neg N(I; mu_neg, s_neg) / P_c(I) = sigmoid(log_odds(I))

    (see :func:`certainty_log_odds`). Single-mode classes give 1, never-fitted classes (or class ids
    outside 0..C-1) give 0. Returns the same kind (torch/numpy) as ``entropy``; float64.
    """
    post = torch.sigmoid(certainty_log_odds(entropy, pred_class, params, as_tensor=True))
    return post.cpu().numpy() if isinstance(entropy, np.ndarray) else post


def certainty_posterior_wins(entropy: torch.Tensor | np.ndarray, pred_class: torch.Tensor | np.ndarray,
                             params: GmmParams) -> torch.Tensor | np.ndarray:
    """Keep mask: the certainty mode has the larger posterior for the pixel's predicted class c,

        w_neg N(I; mu_neg, s_neg) > w_pos N(I; mu_pos, s_pos)   <=>   log_odds(I) > 0

    compared in log space (no underflow), vectorised over pixels with per-class parameters. Ties are
    not kept. Single-mode classes: all True; never-fitted classes and ids outside 0..C-1: False.
    Returns a bool tensor (or numpy array when ``entropy`` is numpy) with the pixels' shape.
    """
    keep = certainty_log_odds(entropy, pred_class, params, as_tensor=True) > 0
    return keep.cpu().numpy() if isinstance(entropy, np.ndarray) else keep


def certainty_log_odds(entropy: torch.Tensor | np.ndarray, pred_class: torch.Tensor | np.ndarray,
                       params: GmmParams, as_tensor: bool = False) -> torch.Tensor | np.ndarray:
    """Log posterior odds of the certainty mode, with the pixel's class parameters (s = variance):

        log_odds(I) = log(w_neg N(I; mu_neg, s_neg)) - log(w_pos N(I; mu_pos, s_pos))
                    = a_c I^2 + b_c I + d_c,
        a_c = (1/s_pos - 1/s_neg) / 2,   b_c = mu_neg/s_neg - mu_pos/s_pos,
        d_c = log(w_neg/w_pos) - log(s_neg/s_pos)/2 - (mu_neg^2/s_neg - mu_pos^2/s_pos)/2

    The quadratic form needs three per-class look-ups per pixel instead of six (memory and speed on
    full-resolution maps). Single-mode classes get +inf, never-fitted classes and ids outside 0..C-1
    get -inf. float64; same device as ``entropy``.
    """
    ent = torch.as_tensor(entropy)
    pred = torch.as_tensor(pred_class, device=ent.device)
    if ent.shape != pred.shape:
        raise UplrError(f"GMM assignment: entropy shape {tuple(ent.shape)} != class map shape {tuple(pred.shape)}")
    coef = torch.as_tensor(_quadratic_coefficients(params), device=ent.device)  # (C + 1, 3)
    num = params.num_classes
    pred = pred.long()
    idx = torch.where((pred >= 0) & (pred < num), pred, torch.full_like(pred, num))  # row C: unknown
    x = ent.to(torch.float64)
    odds = (coef[:, 0][idx] * x + coef[:, 1][idx]) * x + coef[:, 2][idx]
    return odds if as_tensor or not isinstance(entropy, np.ndarray) else odds.cpu().numpy()


def _quadratic_coefficients(params: GmmParams) -> np.ndarray:
    """(C + 1) x 3 array of (a_c, b_c, d_c); the extra last row is for unknown class ids."""
    w, mu, var = params.weights, params.means, params.variances
    coef = np.zeros((params.num_classes + 1, 3))
    normal = params.fitted & ~params.single_mode
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / var
        coef[:-1, 0] = 0.5 * (inv[:, 1] - inv[:, 0])
        coef[:-1, 1] = mu[:, 0] * inv[:, 0] - mu[:, 1] * inv[:, 1]
        coef[:-1, 2] = (np.log(w[:, 0] / w[:, 1]) - 0.5 * np.log(var[:, 0] / var[:, 1])
                        - 0.5 * (mu[:, 0] ** 2 * inv[:, 0] - mu[:, 1] ** 2 * inv[:, 1]))
    coef[:-1][~normal] = 0.0
    coef[:-1, 2][params.single_mode & params.fitted] = np.inf
    coef[:-1, 2][~params.fitted] = -np.inf
    coef[-1] = (0.0, 0.0, -np.inf)
    return coef


def fit_gmm_1d(
    data: np.ndarray | torch.Tensor | Sequence[np.ndarray],
    *,
    value_range: tuple[float, float] = (0.0, 1.0),
    max_iter: int = 500,
    tol: float = 1e-6,
    reg_covar: float = 1e-6,
    bin_variance: bool = True,
) -> GmmParams:
    """Fit a two-component 1-D GMM per class by EM; returns :class:`GmmParams` (index 0 = lower mean).

    ``data`` is one of

    * a 2-D array/tensor of bin counts, C x B: B equal bins on ``value_range``; EM is weighted by the
      counts and runs on the bin centres. With ``bin_variance`` each component variance gets the
      within-bin variance width^2/12 added (Sheppard's correction) so it matches a fit on raw values;
    * a 1-D array of raw values (one class, C = 1);
    * a list of 1-D arrays of raw values, one per class (EM on padded, zero-weighted arrays).

    EM starts from weights (1/2, 1/2), means at the weighted 25% and 75% quantiles (inverse-CDF rule;
    if they coincide, the smallest and largest value present) and variances from a hard split of the
    values at the nearer initial mean (+ ``reg_covar``). It stops per class when the mean log-likelihood
    changes by less than ``tol`` (classes that have converged are frozen) or after ``max_iter`` steps.
    """
    if max_iter < 1:
        raise UplrError(f"fit_gmm_1d: max_iter must be >= 1, got {max_iter}")
    if not tol > 0:
        raise UplrError(f"fit_gmm_1d: tol must be > 0, got {tol}")
    if not reg_covar >= 0:
        raise UplrError(f"fit_gmm_1d: reg_covar must be >= 0, got {reg_covar}")
    x, w, extra_var = _as_weighted(data, value_range, bin_variance)
    num = w.shape[0]
    counts = w.sum(axis=1)
    fitted = counts > 0
    distinct = _distinct_count(x, w)
    single = fitted & (distinct < 2)

    weights = np.full((num, 2), 0.5)
    means = np.zeros((num, 2))
    variances = np.ones((num, 2))
    n_iter = np.zeros(num, dtype=np.int64)
    converged = np.ones(num, dtype=bool)
    init_means = np.zeros((num, 2))
    init_vars = np.ones((num, 2))

    em = fitted & ~single
    if em.any():
        xe = x if x.shape[0] == 1 else x[em]
        init_means[em], init_vars[em] = _initial_params(xe, w[em], reg_covar + extra_var)
        res = _weighted_em(xe, w[em], init_means[em], init_vars[em], max_iter, tol, reg_covar + extra_var)
        weights[em], means[em], variances[em], n_iter[em], converged[em] = res
        bad = ~np.isfinite(np.concatenate([weights, means, variances], axis=1)).all(axis=1)
        if bad.any():  # cannot happen with reg_covar > 0, but never hand NaN downstream
            log.warning("GMM fit gave non-finite parameters for classes %s; keeping all their pixels",
                        np.flatnonzero(bad).tolist())
        collapsed = em & ((weights.min(axis=1) * counts < 0.5) | bad)
        single = single | collapsed

    # Single-mode classes: one component holding the data's mean and variance, the other empty.
    if single.any():
        xs = x if x.shape[0] == 1 else x[single]
        ws = w[single]
        mean = (ws * xs).sum(axis=1) / counts[single]
        var = (ws * (xs - mean[:, None]) ** 2).sum(axis=1) / counts[single] + reg_covar + extra_var
        var = np.maximum(var, np.finfo(np.float64).tiny)
        weights[single] = [1.0, 0.0]
        means[single] = mean[:, None]
        variances[single] = var[:, None]
        n_iter[single & ~em] = 0
        converged[single] = True
    weights[~fitted], means[~fitted], variances[~fitted] = 0.0, 0.0, 1.0

    swap = means[:, 0] > means[:, 1]
    for arr in (weights, means, variances, init_means, init_vars):
        arr[swap] = arr[swap][:, ::-1]
    return GmmParams(weights=weights, means=means, variances=variances, fitted=fitted, single_mode=single,
                     counts=counts, n_iter=n_iter, converged=converged, init_means=init_means,
                     init_variances=init_vars)


def _as_weighted(data, value_range: tuple[float, float], bin_variance: bool):
    """Return (x (1|C, M), w (C, M), extra variance) float64 arrays from a histogram or raw values."""
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    if isinstance(data, np.ndarray) and data.ndim == 2:
        lo, hi = (float(v) for v in value_range)
        if not hi > lo:
            raise UplrError(f"fit_gmm_1d: value_range must be (low, high) with high > low, got {value_range}")
        hist = data.astype(np.float64)
        if (hist < 0).any() or not np.isfinite(hist).all():
            raise UplrError("fit_gmm_1d: histogram counts must be finite and >= 0")
        bins = hist.shape[1]
        width = (hi - lo) / bins
        centres = lo + (np.arange(bins) + 0.5) * width
        return centres[None, :], hist, (width**2 / 12.0 if bin_variance else 0.0)
    if isinstance(data, np.ndarray) and data.ndim == 1:
        data = [data]
    if isinstance(data, np.ndarray) or not isinstance(data, Sequence):
        raise UplrError("fit_gmm_1d: pass a C x B histogram, a 1-D array of values or a list of 1-D arrays")
    rows = [np.asarray(v, dtype=np.float64).reshape(-1) for v in data]
    for r in rows:
        if not np.isfinite(r).all():
            raise UplrError("fit_gmm_1d: values must be finite (got NaN or inf)")
    width = max((len(r) for r in rows), default=0)
    x = np.zeros((len(rows), max(width, 1)))
    w = np.zeros_like(x)
    for i, r in enumerate(rows):
        x[i, : len(r)] = r
        w[i, : len(r)] = 1.0
    return x, w, 0.0


def _distinct_count(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Number of distinct values with positive weight, per row (capped at 2: that is all we need)."""
    xb = np.broadcast_to(x, w.shape)
    out = np.zeros(w.shape[0], dtype=np.int64)
    for i in range(w.shape[0]):
        vals = xb[i, w[i] > 0]
        out[i] = 0 if vals.size == 0 else (1 if vals.min() == vals.max() else 2)
    return out


def _weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> np.ndarray:
    """Per-row inverse-CDF quantile: the smallest x whose cumulative weight reaches q * total."""
    xb = np.broadcast_to(x, w.shape)
    order = np.argsort(xb, axis=1, kind="stable")
    xs = np.take_along_axis(xb, order, axis=1)
    cum = np.cumsum(np.take_along_axis(w, order, axis=1), axis=1)
    target = q * cum[:, -1:]
    idx = (cum < target - 1e-9 * cum[:, -1:]).sum(axis=1)
    return xs[np.arange(xs.shape[0]), np.minimum(idx, xs.shape[1] - 1)]


def _initial_params(x: np.ndarray, w: np.ndarray, var_floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Initial means (weighted 25%/75% quantiles, else min/max) and hard-split variances."""
    xb = np.broadcast_to(x, w.shape)
    m0, m1 = _weighted_quantile(x, w, 0.25), _weighted_quantile(x, w, 0.75)
    same = m0 >= m1
    if same.any():
        present = w > 0
        m0 = np.where(same, np.where(present, xb, np.inf).min(axis=1), m0)
        m1 = np.where(same, np.where(present, xb, -np.inf).max(axis=1), m1)
    means = np.stack([m0, m1], axis=1)
    upper = np.abs(xb - m1[:, None]) < np.abs(xb - m0[:, None])
    resp = np.stack([~upper, upper], axis=2).astype(np.float64)
    nk = (w[..., None] * resp).sum(axis=1)
    total = w.sum(axis=1, keepdims=True)
    mean_all = (w * xb).sum(axis=1, keepdims=True) / total
    var_all = (w * (xb - mean_all) ** 2).sum(axis=1) / total[:, 0]
    mu_k = (w[..., None] * resp * xb[..., None]).sum(axis=1) / np.maximum(nk, _EPS10)
    var_k = (w[..., None] * resp * (xb[..., None] - mu_k[:, None, :]) ** 2).sum(axis=1) / np.maximum(nk, _EPS10)
    var_k = np.where(nk > 0, var_k, var_all[:, None])
    return means, var_k + var_floor


def _weighted_em(x, w, means, variances, max_iter: int, tol: float, var_floor: float):
    """Weighted EM for 2-component 1-D mixtures on rows of (x, w); frozen per row once converged."""
    num = w.shape[0]
    weights = np.full((num, 2), 0.5)
    means, variances = means.copy(), variances.copy()
    total = w.sum(axis=1)
    x3 = np.broadcast_to(x, w.shape)[..., None]  # (C, M, 1)
    n_iter = np.zeros(num, dtype=np.int64)
    converged = np.zeros(num, dtype=bool)
    active = np.ones(num, dtype=bool)
    lower_bound = np.full(num, -np.inf)
    rows = np.arange(num)
    for it in range(1, max_iter + 1):
        r = rows[active]
        xa = x3 if x3.shape[0] == 1 else x3[r]
        # E-step: log(w_k N(x; mu_k, s_k)) and the per-point log-likelihood.
        lp = (np.log(weights[r])[:, None, :]
              - 0.5 * (_LOG_2PI + np.log(variances[r])[:, None, :]
                       + (xa - means[r][:, None, :]) ** 2 / variances[r][:, None, :]))
        lnorm = np.logaddexp(lp[..., 0], lp[..., 1])
        resp = np.exp(lp - lnorm[..., None]) * w[r][..., None]
        bound = (w[r] * lnorm).sum(axis=1) / total[r]
        # M-step (scikit-learn's: mass + 10 eps, variance + reg_covar, weights renormalised).
        nk = resp.sum(axis=1) + _EPS10
        mu = (resp * xa).sum(axis=1) / nk
        var = (resp * (xa - mu[:, None, :]) ** 2).sum(axis=1) / nk + var_floor
        weights[r] = nk / nk.sum(axis=1, keepdims=True)
        means[r], variances[r] = mu, var
        n_iter[r] = it
        done = np.abs(bound - lower_bound[r]) < tol
        lower_bound[r] = bound
        converged[r[done]] = True
        active[r[done]] = False
        if not active.any():
            break
    if not converged.all():
        log.warning("GMM EM did not converge in %d iterations for %d class(es); using the last estimate",
                    max_iter, int((~converged).sum()))
    return weights, means, variances, n_iter, converged
