"""Benchmark: UPLR's GMM pseudo-label selection vs scikit-learn's GaussianMixture, per class.

Synthetic data: 19 classes with Cityscapes-like pixel imbalance; per class a bimodal normalised entropy
(a "certain" Beta mode near 0 and an "uncertain" one in the middle), ``--pixels`` in total, in chunks of
one 512 x 1024 image each. Entropies are given (computing them from softmax maps costs the same for
both methods and is left out).

* ours: per-class histograms (``class_histogram``, ``--bins`` bins) accumulated chunk by chunk, one
  vectorised EM over all classes (``fit_gmm_1d``) and the assignment (``certainty_posterior_wins``);
* scikit-learn: ``GaussianMixture(2)`` fitted on each class's raw entropies, started from the same
  point (uniform weights, our initial means and variances) with the same ``tol``/``max_iter``/
  ``reg_covar``, then ``predict_proba``; a pixel is kept when its lower-mean component wins.

Prints both times, the speed ratio (target >= 20x) and the share of identical labels (target >= 99.5%).
Then the ``monotone`` keep rule (``upst.gmm_rule``) on the same fit: its assignment time over the
posterior's (target <= 1.5x: one threshold look-up per pixel instead of a quadratic), the kept shares of
both rules, and the share of pixels the posterior keeps although a rejected pixel of their class is
more certain (0 for monotone by construction).
Run: .venv/bin/python bench/bench_gmm.py [--pixels 1e7]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from uplr.method.gmm import certainty_posterior_wins, fit_gmm_1d
from uplr.method.gmm_rules import keep_mask, monotone_threshold
from uplr.method.pseudo import IGNORE, class_histogram

# Approximate Cityscapes train pixel shares of the 19 classes (road .. bicycle).
SHARES = np.array([0.327, 0.054, 0.202, 0.0058, 0.0078, 0.0109, 0.0018, 0.0049, 0.141, 0.0103, 0.0356,
                   0.0108, 0.0012, 0.0619, 0.0024, 0.0021, 0.0021, 0.0009, 0.0037])
CHUNK = 512 * 1024


def make_data(pixels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shares = SHARES / SHARES.sum()
    counts = np.maximum((shares * pixels).astype(np.int64), 50)
    ents, classes = [], []
    for c, n in enumerate(counts):
        certain = rng.uniform(0.35, 0.9)
        n0 = int(n * certain)
        a0 = rng.uniform(1.5, 3.0)  # certain mode: mean a0 / (a0 + b0) ~ 0.05..0.15
        b0 = a0 * rng.uniform(6.0, 18.0)
        a1 = rng.uniform(4.0, 8.0)  # uncertain mode: mean ~ 0.35..0.6
        b1 = a1 * rng.uniform(0.7, 1.8)
        ents.append(np.concatenate([rng.beta(a0, b0, n0), rng.beta(a1, b1, n - n0)]))
        classes.append(np.full(n, c, dtype=np.int64))
    order = rng.permutation(int(counts.sum()))
    return np.concatenate(ents)[order].astype(np.float32), np.concatenate(classes)[order]


def run_ours(ent: torch.Tensor, cls: torch.Tensor, num: int, bins: int, tol: float, max_iter: int):
    t0 = time.perf_counter()
    hist = torch.zeros(num, bins, dtype=torch.int64)
    for s in range(0, ent.numel(), CHUNK):
        hist += class_histogram(ent[s : s + CHUNK], cls[s : s + CHUNK], num, bins)
    t1 = time.perf_counter()
    params = fit_gmm_1d(hist, tol=tol, max_iter=max_iter)
    t2 = time.perf_counter()
    labels = torch.empty(ent.numel(), dtype=torch.uint8)
    for s in range(0, ent.numel(), CHUNK):
        e, c = ent[s : s + CHUNK], cls[s : s + CHUNK]
        keep = certainty_posterior_wins(e, c, params)
        labels[s : s + CHUNK] = torch.where(keep, c, IGNORE).to(torch.uint8)
    t3 = time.perf_counter()
    return labels.numpy(), params, (t1 - t0, t2 - t1, t3 - t2)


def run_rule(ent: torch.Tensor, cls: torch.Tensor, params, rule: str) -> tuple[np.ndarray, float]:
    """Keep masks of one rule over all pixels (chunked as in run_ours) and the time it took."""
    t0 = time.perf_counter()
    thr = monotone_threshold(params) if rule == "monotone" else None
    keep = torch.empty(ent.numel(), dtype=torch.bool)
    for s in range(0, ent.numel(), CHUNK):
        keep[s : s + CHUNK] = keep_mask(ent[s : s + CHUNK], cls[s : s + CHUNK], params, rule, thr)
    return keep.numpy(), time.perf_counter() - t0


def out_of_order_share(ent: np.ndarray, cls: np.ndarray, keep: np.ndarray, num: int) -> float:
    """Share of all pixels kept although a rejected pixel of their class has a lower entropy."""
    bad = 0
    for c in range(num):
        m = cls == c
        rejected = ent[m & ~keep]
        if rejected.size:
            bad += int((keep[m] & (ent[m] > rejected.min())).sum())
    return bad / max(ent.size, 1)


def run_sklearn(ent: np.ndarray, cls: np.ndarray, num: int, params, tol: float, max_iter: int):
    t0 = time.perf_counter()
    labels = np.full(ent.shape, IGNORE, dtype=np.uint8)
    iters = []
    for c in range(num):
        idx = np.flatnonzero(cls == c)
        x = ent[idx].astype(np.float64)[:, None]
        gm = GaussianMixture(2, covariance_type="full", weights_init=[0.5, 0.5],
                             means_init=params.init_means[c].reshape(2, 1),
                             precisions_init=(1.0 / params.init_variances[c]).reshape(2, 1, 1),
                             tol=tol, max_iter=max_iter, reg_covar=1e-6, init_params="random_from_data",
                             random_state=0).fit(x)
        lower = int(np.argmin(gm.means_[:, 0]))
        keep = gm.predict_proba(x)[:, lower] > 0.5
        labels[idx[keep]] = c
        iters.append(gm.n_iter_)
    return labels, iters, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pixels", type=float, default=1e7, help="pixels in total over the 19 classes")
    ap.add_argument("--bins", type=int, default=2048)
    ap.add_argument("--tol", type=float, default=1e-6, help="EM tolerance, both methods")
    ap.add_argument("--max-iter", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads for torch and for numpy/BLAS (both methods; 1 = fair and stable)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    num = len(SHARES)
    ent_np, cls_np = make_data(int(args.pixels), args.seed)
    ent, cls = torch.from_numpy(ent_np), torch.from_numpy(cls_np)
    print(f"{ent.numel():,} pixels, {num} classes (smallest {np.bincount(cls_np).min():,} px), "
          f"{args.bins} bins, tol {args.tol}, torch threads {torch.get_num_threads()}")

    ours, params, (t_hist, t_fit, t_assign) = run_ours(ent, cls, num, args.bins, args.tol, args.max_iter)
    t_ours = t_hist + t_fit + t_assign
    print(f"ours     : {t_ours:8.3f} s  (histograms {t_hist:.3f} s, EM fit {t_fit:.3f} s, "
          f"assignment {t_assign:.3f} s); EM iterations {params.n_iter.tolist()}")
    keep_p, t_p = run_rule(ent, cls, params, "posterior")
    keep_m, t_m = run_rule(ent, cls, params, "monotone")
    print(f"rules    : posterior {t_p:.3f} s, monotone {t_m:.3f} s: ratio {t_m / t_p:.2f}x (target <= 1.5x); "
          f"kept {100 * keep_p.mean():.1f}% / {100 * keep_m.mean():.1f}%; kept out of entropy order "
          f"{100 * out_of_order_share(ent_np, cls_np, keep_p, num):.3f}% / "
          f"{100 * out_of_order_share(ent_np, cls_np, keep_m, num):.3f}%")
    ref, iters, t_sk = run_sklearn(ent_np, cls_np, num, params, args.tol, args.max_iter)
    print(f"sklearn  : {t_sk:8.3f} s  (fit + predict_proba per class); EM iterations {iters}")
    same = float((ours == ref).mean())
    kept = float((ours != IGNORE).mean())
    print(f"speed ratio sklearn / ours: {t_sk / t_ours:.1f}x  (target >= 20x)")
    print(f"same labels: {100 * same:.3f}%  (target >= 99.5%); pixels kept: ours {100 * kept:.1f}%, "
          f"sklearn {100 * float((ref != IGNORE).mean()):.1f}%")
    worst = min(range(num), key=lambda c: (ours[cls_np == c] == ref[cls_np == c]).mean())
    print(f"lowest per-class agreement: class {worst}, "
          f"{100 * float((ours[cls_np == worst] == ref[cls_np == worst]).mean()):.3f}%")


if __name__ == "__main__":
    main()
