"""Per-class two-component 1-D GMM (uplr.method.gmm): hand-computed formulas, scikit-learn agreement,
degenerate classes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture

from uplr.errors import UplrError
from uplr.method.gmm import (
    GmmParams,
    certainty_log_odds,
    certainty_posterior,
    certainty_posterior_wins,
    fit_gmm_1d,
    gmm_density,
)

BINS = 4096


def _params(weights, means, variances, fitted=None, single=None) -> GmmParams:
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    c = w.shape[0]
    return GmmParams(
        weights=w, means=np.atleast_2d(np.asarray(means, dtype=np.float64)),
        variances=np.atleast_2d(np.asarray(variances, dtype=np.float64)),
        fitted=np.ones(c, bool) if fitted is None else np.asarray(fitted),
        single_mode=np.zeros(c, bool) if single is None else np.asarray(single),
        counts=np.full(c, 100.0), n_iter=np.zeros(c, np.int64), converged=np.ones(c, bool),
        init_means=np.zeros((c, 2)), init_variances=np.ones((c, 2)))


def test_gmm_density_hand_computed():
    # 0.3 N(1; 0, 1) + 0.7 N(1; 1, 4) = 0.3 e^{-1/2} / sqrt(2 pi) + 0.7 / sqrt(8 pi)
    #   = 0.3 * 0.2419707245 + 0.7 * 0.1994711402 = 0.0725912174 + 0.1396297981
    assert gmm_density(1.0, [0.3, 0.7], [0.0, 1.0], [1.0, 4.0]) == pytest.approx(0.2122210155, abs=1e-9)


def test_posterior_and_decision_hand_computed():
    # Equal weights and variances: the boundary is the midpoint 0.4. At I = 0.2 the log odds are
    # ((0.2 - 0.6)^2 - 0) / (2 * 0.01) = 8, so the posterior is sigmoid(8) = 0.9996646499.
    p = _params([0.5, 0.5], [0.2, 0.6], [0.01, 0.01])
    ent = np.array([0.2, 0.3, 0.39, 0.4, 0.41, 0.5])
    cls = np.zeros(6, dtype=np.int64)
    post = certainty_posterior(ent, cls, p)
    assert post[0] == pytest.approx(0.9996646499, abs=1e-9)
    assert post[3] == pytest.approx(0.5, abs=1e-9)
    assert certainty_posterior_wins(ent, cls, p).tolist() == [True, True, True, False, False, False]
    # w = (1/4, 3/4): log(1/3) + (0.32 - 0.8 I) / 0.02 = 0  ->  I = (16 - ln 3) / 40 = 0.372535
    p = _params([0.25, 0.75], [0.2, 0.6], [0.01, 0.01])
    keep = certainty_posterior_wins(np.array([0.37, 0.372, 0.373, 0.375]), np.zeros(4, np.int64), p)
    assert keep.tolist() == [True, True, False, False]
    assert certainty_log_odds(np.array([0.2]), np.zeros(1, np.int64), p)[0] == pytest.approx(
        math.log(1 / 3) + 8, abs=1e-9)


def test_decision_uses_each_pixels_class_and_torch_matches_numpy():
    p = _params([[0.5, 0.5], [0.5, 0.5]], [[0.2, 0.6], [0.0, 0.2]], [[0.01, 0.01], [0.01, 0.01]])
    ent = np.array([0.15, 0.15, 0.3, 0.3, 0.3])
    cls = np.array([0, 1, 0, 1, 7])  # class 7 does not exist: never kept
    expected = [True, False, True, False, False]  # boundaries: 0.4 for class 0, 0.1 for class 1
    assert certainty_posterior_wins(ent, cls, p).tolist() == expected
    out = certainty_posterior_wins(torch.tensor(ent, dtype=torch.float32), torch.tensor(cls), p)
    assert out.dtype == torch.bool and out.tolist() == expected


def _datasets() -> list[np.ndarray]:
    """Three seeded bimodal entropy samples in [0, 1]: well separated, moderate and heavy overlap."""
    rng = np.random.default_rng(2021)
    spec = [((0.10, 0.04, 9000), (0.60, 0.12, 3000)),
            ((0.15, 0.06, 2500), (0.40, 0.10, 2500)),
            ((0.20, 0.05, 1500), (0.33, 0.08, 2500))]
    out = []
    for (m0, s0, n0), (m1, s1, n1) in spec:
        v = np.concatenate([rng.normal(m0, s0, n0), rng.normal(m1, s1, n1)])
        out.append(np.clip(v, 0.0, 1.0))
    return out


def _sklearn_fit(values: np.ndarray, params: GmmParams, c: int, cov: str) -> GaussianMixture:
    prec = 1.0 / params.init_variances[c]
    gm = GaussianMixture(
        n_components=2, covariance_type=cov, weights_init=[0.5, 0.5],
        means_init=params.init_means[c].reshape(2, 1),
        precisions_init=prec.reshape(2, 1, 1) if cov == "full" else prec,
        tol=1e-10, max_iter=10000, reg_covar=1e-6, init_params="random_from_data", random_state=0)
    return gm.fit(values[:, None])


def _compare(values: np.ndarray, params: GmmParams, c: int, cov: str) -> None:
    gm = _sklearn_fit(values, params, c, cov)
    sk_means = np.sort(gm.means_[:, 0])
    np.testing.assert_allclose(params.means[c], sk_means, atol=1e-3)
    lower = int(np.argmin(gm.means_[:, 0]))
    sk_keep = gm.predict_proba(values[:, None])[:, lower] > 0.5
    ours = certainty_posterior_wins(values, np.full(values.shape, c), params)
    assert (sk_keep == ours).mean() >= 0.995
    assert 0.05 < ours.mean() < 0.95  # the data really is split, the agreement is not trivial


@pytest.mark.slow
@pytest.mark.parametrize("cov", ["full", "spherical"])
def test_raw_value_fit_matches_sklearn(cov):
    data = _datasets()
    params = fit_gmm_1d(data, tol=1e-10, max_iter=10000)  # all three classes fitted at once
    assert params.fitted.all() and not params.single_mode.any() and params.converged.all()
    assert (params.means[:, 0] < params.means[:, 1]).all()
    for c, values in enumerate(data):
        _compare(values, params, c, cov)


@pytest.mark.slow
@pytest.mark.parametrize("cov", ["full", "spherical"])
def test_histogram_fit_matches_sklearn_on_raw_values(cov):
    data = _datasets()
    hist = np.stack([np.histogram(v, bins=BINS, range=(0.0, 1.0))[0] for v in data])
    params = fit_gmm_1d(hist, tol=1e-10, max_iter=10000)
    np.testing.assert_array_equal(params.counts, [len(v) for v in data])
    for c, values in enumerate(data):
        _compare(values, params, c, cov)


def test_vectorised_fit_equals_one_class_at_a_time():
    data = _datasets()
    hist = np.stack([np.histogram(v, bins=512, range=(0.0, 1.0))[0] for v in data])
    joint = fit_gmm_1d(hist, tol=1e-8)
    for c in range(len(data)):
        alone = fit_gmm_1d(hist[c : c + 1], tol=1e-8)
        np.testing.assert_allclose(joint.means[c], alone.means[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(joint.variances[c], alone.variances[0], rtol=0, atol=1e-12)
        assert joint.n_iter[c] == alone.n_iter[0]


def test_certainty_mode_is_index_zero_even_when_it_is_the_minority():
    rng = np.random.default_rng(3)
    v = np.clip(np.concatenate([rng.normal(0.1, 0.03, 500), rng.normal(0.7, 0.1, 4500)]), 0, 1)
    p = fit_gmm_1d(v, tol=1e-8)
    assert p.means[0, 0] == pytest.approx(0.1, abs=0.01) and p.means[0, 1] == pytest.approx(0.7, abs=0.01)
    assert p.weights[0, 0] == pytest.approx(0.1, abs=0.01)


def _finite(p: GmmParams) -> bool:
    arrays = (p.weights, p.means, p.variances, p.counts, p.init_means, p.init_variances)
    return all(np.isfinite(a).all() for a in arrays)


def test_degenerate_histogram_classes():
    hist = np.zeros((4, 64), dtype=np.int64)
    hist[1, 10] = 1  # one pixel
    hist[2, 20] = 500  # all in one bin
    hist[3, 5], hist[3, 50] = 30, 10  # two distinct values
    p = fit_gmm_1d(hist)
    assert _finite(p)
    assert p.fitted.tolist() == [False, True, True, True]
    assert p.single_mode.tolist() == [False, True, True, False]
    centres = (np.arange(64) + 0.5) / 64
    np.testing.assert_allclose(p.means[3], [centres[5], centres[50]], atol=1e-9)
    np.testing.assert_allclose(p.weights[3], [0.75, 0.25], atol=1e-9)
    ent = np.array([0.9, centres[10], 0.99, centres[5], centres[50]])
    cls = np.array([0, 1, 2, 3, 3])
    # unfitted class: not kept; single-mode classes: kept whatever the entropy; two values: the lower one
    assert certainty_posterior_wins(ent, cls, p).tolist() == [False, True, True, True, False]
    js = p.to_json()
    json.dumps(js, allow_nan=False)
    assert js[0]["fitted"] is False and js[0]["means"] is None
    assert js[2]["single_mode"] is True and js[2]["pixels"] == 500


@pytest.mark.parametrize("values, single", [
    ([0.42], True),                      # one pixel
    ([0.3] * 50, True),                  # all equal
    ([0.1] * 5 + [0.7] * 5, False),      # two distinct values, balanced
    ([0.1] * 9 + [0.7] * 1, False),      # two distinct values, 25%/75% quantiles coincide
])
def test_degenerate_raw_classes(values, single):
    v = np.asarray(values)
    p = fit_gmm_1d([v, np.array([])])
    assert _finite(p)
    assert p.fitted.tolist() == [True, False]
    assert bool(p.single_mode[0]) is single
    keep = certainty_posterior_wins(v, np.zeros(len(v), np.int64), p)
    if single:
        assert keep.all()
    else:
        np.testing.assert_allclose(p.means[0], [0.1, 0.7], atol=1e-6)
        assert keep.tolist() == [x == 0.1 for x in values]
    json.dumps(p.to_json(), allow_nan=False)


def test_bad_inputs_raise_uplr_error():
    with pytest.raises(UplrError):
        fit_gmm_1d(np.array([0.1, np.nan]))
    with pytest.raises(UplrError):
        fit_gmm_1d(-np.ones((2, 8)))
    with pytest.raises(UplrError):
        fit_gmm_1d(np.ones((2, 8)), max_iter=0)
    with pytest.raises(UplrError):
        certainty_posterior_wins(np.zeros(3), np.zeros(4, np.int64), _params([0.5, 0.5], [0, 1], [1, 1]))


# ----------------------------------------------------------------------------------------------------
# keep rules: posterior (the paper's) and monotone (I <= the boundary nearest above the certain mean)


def test_monotone_threshold_hand_computed():
    from uplr.method.gmm_rules import monotone_threshold

    # equal variances 0.01, means 0.2 / 0.6, equal weights: log_odds = 16 - 40 I, one boundary at 0.4
    assert monotone_threshold(_params([0.5, 0.5], [0.2, 0.6], [0.01, 0.01]))[0] == pytest.approx(0.4, abs=1e-12)
    # certain mode wider (var 0.04 vs 0.01), means 0.1 / 0.3, equal weights:
    # log_odds = -ln 2 - (I - 0.1)^2 / 0.08 + (I - 0.3)^2 / 0.02 = 37.5 I^2 - 27.5 I + 4.375 - ln 2,
    # roots (27.5 -+ sqrt(27.5^2 - 150 (4.375 - ln 2))) / 75 = 0.17624.., 0.55709..; log_odds(0.1) > 0
    disc = math.sqrt(27.5**2 - 150 * (4.375 - math.log(2)))
    lo, hi = (27.5 - disc) / 75, (27.5 + disc) / 75
    params = _params([0.5, 0.5], [0.1, 0.3], [0.04, 0.01])
    assert monotone_threshold(params)[0] == pytest.approx(lo, abs=1e-12)
    # the posterior keeps both tails: below lo and above hi; monotone only below lo
    x = np.array([0.0, lo - 1e-6, lo + 1e-6, 0.4, hi + 1e-6, 1.0])
    cls = np.zeros(len(x), dtype=np.int64)
    assert certainty_posterior_wins(x, cls, params).tolist() == [True, True, False, False, True, True]
    from uplr.method.gmm_rules import keep_mask

    assert keep_mask(x, cls, params, "monotone").tolist() == [True, True, False, False, False, False]
    assert keep_mask(x, cls, params, "posterior").tolist() == [True, True, False, False, True, True]
    # single-mode: keep all (+inf); never fitted: keep none (-inf); unknown class ids: never kept
    both = _params([[0.5, 0.5], [1.0, 0.0]], [[0.1, 0.3], [0.2, 0.2]], [[0.04, 0.01], [0.01, 0.01]],
                   single=[False, True])
    assert monotone_threshold(both)[1] == np.inf
    none = _params([0.5, 0.5], [0.0, 0.0], [1.0, 1.0], fitted=[False])
    assert monotone_threshold(none)[0] == -np.inf
    assert keep_mask(np.array([0.0, 0.0]), np.array([0, 5]), params, "monotone").tolist() == [True, False]
    with pytest.raises(UplrError, match="gmm_rule"):
        keep_mask(x, cls, params, "median")


def test_monotone_keeps_the_most_certain_pixels_where_the_posterior_drops_them():
    """Certain mode narrow (sd 0.02) at 0.3, the other wide (sd 0.2) at 0.5: at I = 0 the wide component
    wins, so the posterior rejects the most certain pixels; monotone keeps everything below its boundary."""
    from uplr.method.gmm_rules import keep_mask, monotone_threshold

    params = _params([0.5, 0.5], [0.3, 0.5], [0.02**2, 0.2**2])
    t = monotone_threshold(params)[0]
    assert 0.3 < t < 0.5
    x = np.array([0.0, 0.3, t - 1e-9, t + 1e-9])
    cls = np.zeros(4, dtype=np.int64)
    assert certainty_posterior_wins(x, cls, params).tolist() == [False, True, True, False]
    assert keep_mask(x, cls, params, "monotone").tolist() == [True, True, True, False]


def _wide_certain_histogram(rng, bins):
    """The issue's case: certainty component sd 0.157 (wide), the other sd 0.027 (narrow)."""
    vals = np.concatenate([rng.normal(0.25, 0.157, 60000), rng.normal(0.5, 0.027, 40000)])
    return np.histogram(np.clip(vals, 0, 1 - 1e-12), bins=bins, range=(0, 1))[0]


def _random_histogram(rng, bins):
    kind = rng.integers(3)
    n = int(rng.integers(200, 20000))
    if kind == 0:  # unimodal
        vals = rng.normal(rng.uniform(0.05, 0.9), rng.uniform(0.01, 0.3), n)
    elif kind == 1:  # bimodal, any widths (certain component wider or narrower)
        m0, m1 = np.sort(rng.uniform(0.0, 1.0, 2))
        n0 = int(n * rng.uniform(0.1, 0.9))
        vals = np.concatenate([rng.normal(m0, rng.uniform(0.005, 0.25), n0),
                               rng.normal(m1, rng.uniform(0.005, 0.25), n - n0)])
    else:  # entropy-like: a spike near 0 and a long tail
        vals = np.concatenate([rng.beta(0.5, 8.0, n // 2), rng.beta(2.0, 2.0, n - n // 2)])
    return np.histogram(np.clip(vals, 0, 1 - 1e-12), bins=bins, range=(0, 1))[0]


def _out_of_order(entropy: np.ndarray, cls: np.ndarray, keep: np.ndarray, num: int) -> list[int]:
    """Classes where some kept pixel is more uncertain than some rejected pixel."""
    bad = []
    for c in range(num):
        k, r = entropy[(cls == c) & keep], entropy[(cls == c) & ~keep]
        if k.size and r.size and k.max() > r.min():
            bad.append(c)
    return bad


def test_monotone_never_keeps_a_pixel_above_a_rejected_ones_entropy():
    """Property over random bimodal / unimodal / entropy-like histograms and the wide-certain case."""
    from uplr.method.gmm_rules import keep_mask, kept_share_from_histogram

    rng = np.random.default_rng(0)
    bins = 512
    hists = [_wide_certain_histogram(rng, bins)] + [_random_histogram(rng, bins) for _ in range(59)]
    hist = np.stack(hists)
    params = fit_gmm_1d(hist)
    num = hist.shape[0]
    # pixels: every bin centre of every class plus random values, in shuffled order
    centres = (np.arange(bins) + 0.5) / bins
    ent = np.concatenate([np.tile(centres, num), rng.uniform(0, 1, 40 * num)])
    cls = np.concatenate([np.repeat(np.arange(num), bins), rng.integers(0, num, 40 * num)])
    order = rng.permutation(ent.size)
    ent, cls = ent[order], cls[order]
    keep_m = keep_mask(ent, cls, params, "monotone")
    assert _out_of_order(ent, cls, keep_m, num) == []
    shares = kept_share_from_histogram(hist, params, "monotone")
    assert all(v == 0.0 for v in shares["kept_above_rejected_share"])
    # the same check fails for the posterior rule on the wide-certain class (so it can fail)
    keep_p = keep_mask(ent, cls, params, "posterior")
    assert 0 in _out_of_order(ent, cls, keep_p, num)
    post = kept_share_from_histogram(hist, params, "posterior")
    assert post["kept_above_rejected_share"][0] > 0
    # on the wide-certain class, the posterior keeps pixels above I = 0.69; monotone none above its boundary
    wide = cls == 0
    assert keep_p[wide & (ent > 0.69)].any() and not keep_m[wide & (ent > 0.69)].any()


def test_selector_rules_end_to_end():
    """GmmSelector(rule=...) on softmax maps: monotone's kept pixels never exceed a rejected pixel's entropy."""
    from uplr.method.pseudo import IGNORE, PixelStats, build_selector
    from uplr.method.uncertainty import pixel_entropy

    gen = torch.Generator().manual_seed(0)
    num = 4
    # a mix of confident and unsure pixels: logits scaled by a per-pixel temperature
    scale = torch.where(torch.rand(6, 1, 40, 50, generator=gen) < 0.5, 6.0, 0.7)
    prob = torch.softmax(torch.randn(6, num, 40, 50, generator=gen) * scale, dim=1)
    stats = PixelStats(num, bins=256)
    stats.update(prob)
    ent = pixel_entropy(prob, dim=1).reshape(-1).numpy()
    cls = prob.argmax(dim=1).reshape(-1).numpy()
    for rule in ("posterior", "monotone"):
        sel = build_selector("gmm", bins=256, rule=rule)
        sel.fit(stats)
        labels = sel.assign(prob).reshape(-1).numpy()
        kept = labels != IGNORE
        assert np.array_equal(labels[kept], cls[kept])
        summary = sel.summary()
        assert summary["rule"] == rule and len(summary["kept_share"]) == num
        assert all(0.0 <= v <= 1.0 for v in summary["kept_share"])
        if rule == "monotone":
            assert _out_of_order(ent, cls, kept, num) == []
            assert summary["kept_above_rejected_share"] == [0.0] * num
        # the histogram's kept share is within a few bins' mass of the assigned share
        for c in range(num):
            actual = kept[cls == c].mean()
            assert abs(summary["kept_share"][c] - actual) < 0.05
    with pytest.raises(UplrError, match="gmm_rule"):
        build_selector("gmm", rule="median")
