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
