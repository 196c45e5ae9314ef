"""Soft-balance resampling formulas against numbers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from uplr.errors import UplrError
from uplr.method.resampling import (
    auto_mu_alpha,
    class_sampling_prob,
    image_class_counts,
    image_sampling_prob,
    rectified_image_prob,
    soft_balance_weights,
)

# 3 images x 3 classes, lambda = 0.5.
# Column totals N_c = (100, 25, 9) -> N_c^0.5 = (10, 5, 3), sum 18
# p_c = (10/18 / 100, 5/18 / 25, 3/18 / 9) = (1/180, 1/90, 1/54)
COUNTS = np.array([[64, 0, 0], [36, 16, 0], [0, 9, 9]])
LAM = 0.5
P_C = [1 / 180, 1 / 90, 1 / 54]
# x1: only class 0                  -> p = 1/180
# x2: sqrt(36)=6, sqrt(16)=4 -> weights (0.6, 0.4) -> p = 0.6/180 + 0.4/90 = 7/900
# x3: sqrt(9)=3, sqrt(9)=3 -> weights (0.5, 0.5)  -> p = 0.5/90 + 0.5/54 = 2/135
P_I = [1 / 180, 7 / 900, 2 / 135]


def test_image_class_counts():
    label = np.array([[0, 0, 1], [255, 2, 2]], dtype=np.uint8)
    counts = image_class_counts(label, num_classes=3)
    assert counts.tolist() == [2, 1, 2] and counts.dtype == np.int64
    assert image_class_counts(np.full((4, 4), 255, np.uint8)).tolist() == [0] * 19
    with pytest.raises(UplrError, match="19"):
        image_class_counts(np.array([[0, 19]], dtype=np.uint8))
    with pytest.raises(UplrError, match="outside"):
        image_class_counts(np.array([[-1, 0]]), num_classes=3)


def test_class_prob_by_hand():
    np.testing.assert_allclose(class_sampling_prob(COUNTS.sum(0), LAM), P_C, rtol=1e-12)
    # lambda = 1: every pixel weighs 1 / sum N = 1/134; lambda = 0: each class 1/3 of the mass
    np.testing.assert_allclose(class_sampling_prob([100, 25, 9], 1.0), [1 / 134] * 3, rtol=1e-12)
    np.testing.assert_allclose(class_sampling_prob([100, 25, 9], 0.0), [1 / 300, 1 / 75, 1 / 27], rtol=1e-12)
    # an absent class gets 0 and stays out of the sum: sqrt -> (10, 0, 3), sum 13
    np.testing.assert_allclose(
        class_sampling_prob([100, 0, 9], LAM), [10 / 13 / 100, 0, 3 / 13 / 9], rtol=1e-12
    )
    np.testing.assert_allclose(class_sampling_prob([100, 0, 9], 0.0), [1 / 200, 0, 1 / 18], rtol=1e-12)
    assert class_sampling_prob([0, 0], LAM).tolist() == [0.0, 0.0]
    # huge lambda: no overflow, all mass on the biggest class -> 1/N_max
    np.testing.assert_allclose(class_sampling_prob([1e9, 1e3], 200.0), [1e-9, 0.0], atol=1e-300)


def test_image_prob_by_hand():
    np.testing.assert_allclose(image_sampling_prob(COUNTS, P_C, LAM), P_I, rtol=1e-12)
    # lambda = 1 on the whole set: every image is uniform, 1 / sum N
    p_c1 = class_sampling_prob(COUNTS.sum(0), 1.0)
    np.testing.assert_allclose(image_sampling_prob(COUNTS, p_c1, 1.0), [1 / 134] * 3, rtol=1e-12)


def test_image_prob_restricted_classes():
    # S = {1, 2}: x1 holds none -> 0; x2 only class 1 (weight 1) -> 1/90; x3 unchanged -> 2/135
    np.testing.assert_allclose(
        image_sampling_prob(COUNTS, P_C, LAM, classes=[1, 2]), [0, 1 / 90, 2 / 135], rtol=1e-12
    )
    # S = {0}: x1, x2 -> p_0 = 1/180; x3 has no class 0 -> 0
    np.testing.assert_allclose(
        image_sampling_prob(COUNTS, P_C, LAM, classes=[0]), [1 / 180, 1 / 180, 0], rtol=1e-12
    )
    assert image_sampling_prob(COUNTS, P_C, LAM, classes=[]).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(UplrError, match="class id 3"):
        image_sampling_prob(COUNTS, P_C, LAM, classes=[3])
    with pytest.raises(UplrError, match="columns"):
        image_sampling_prob(COUNTS, P_C[:2], LAM)


def test_rectified_prob():
    assert rectified_image_prob(0.3, alpha=5.0, mu=0.3) == pytest.approx(0.6)
    # alpha (p - mu) = +-ln 9 -> sigmoid 0.9 / 0.1
    a = 2.0
    p = np.array([0.5 + math.log(9) / a, 0.5 - math.log(9) / a])
    np.testing.assert_allclose(rectified_image_prob(p, a, 0.5), [1.0, 0.2], rtol=1e-12)
    with np.errstate(all="raise"):
        out = rectified_image_prob(np.array([-1.0, 1.0]), alpha=1e6, mu=0.0)
    np.testing.assert_allclose(out, [0.1, 1.1])
    with pytest.raises(UplrError, match="finite"):
        rectified_image_prob(0.1, alpha=float("inf"), mu=0.0)


def test_auto_mu_alpha_by_hand():
    # p_i > 0 are 1..9 (zeros left out); numpy linear quantile of 1..9 at q is 1 + 8q:
    # mu = 5, q10 = 1.8, q90 = 8.2 -> alpha = 2 ln 9 / 6.4
    p = np.array([0.0, 0.0, *range(1, 10)], dtype=float)
    mu, alpha = auto_mu_alpha(p)
    assert mu == pytest.approx(5.0) and alpha == pytest.approx(2 * math.log(9) / 6.4)
    np.testing.assert_allclose(rectified_image_prob([1.8, 5.0, 8.2], alpha, mu), [0.2, 0.6, 1.0], rtol=1e-12)
    mu25, _ = auto_mu_alpha(p, mu_quantile=0.25)
    assert mu25 == pytest.approx(3.0)
    mu_s, alpha_s = auto_mu_alpha(p * 1e-9)  # scales with p_i: same p̂ on any dataset size
    assert mu_s == pytest.approx(5e-9) and alpha_s == pytest.approx(alpha * 1e9)
    with pytest.raises(UplrError, match="spread"):
        auto_mu_alpha(p, spread=(0.9, 0.1))


@pytest.mark.parametrize(
    "p",
    [np.zeros(5), np.array([]), np.full(6, 3e-6), np.array([0.0, 0.0, 4e-7]), np.array([1e-9] * 19 + [2e-9])],
)
def test_auto_mu_alpha_degenerate(p):
    mu, alpha = auto_mu_alpha(p)
    assert math.isfinite(mu) and math.isfinite(alpha) and alpha > 0
    p_hat = rectified_image_prob(p, alpha, mu)
    assert not np.isnan(p_hat).any()
    if p.size and np.unique(p).size == 1:
        np.testing.assert_allclose(p_hat, 0.6)  # all equal -> uniform


def test_sampling_weights_chain():
    np.testing.assert_allclose(
        soft_balance_weights(COUNTS, LAM, alpha=1000.0, mu=7 / 900).p_hat,
        rectified_image_prob(P_I, 1000.0, 7 / 900),
        rtol=1e-12,
    )
    # auto: mu = median of (1/180, 7/900, 2/135) = 7/900, so x2 gets exactly 0.6
    res = soft_balance_weights(COUNTS, LAM)
    assert res.mu == pytest.approx(7 / 900)
    assert res.p_hat[1] == pytest.approx(0.6)
    assert res.p_hat[0] < 0.6 < res.p_hat[2]
    # TGAA with S = {1, 2}: x1 has p_i = 0 and falls to the lowest weight, still above the 0.1 floor
    w = soft_balance_weights(COUNTS, LAM, classes=[1, 2]).p_hat
    assert 0.1 < w[0] < w[1] < w[2]
    # a fixed alpha with auto mu
    res2 = soft_balance_weights(COUNTS, LAM, alpha=10.0)
    assert res2.alpha == 10.0 and res2.mu == pytest.approx(7 / 900)


# ----------------------------------------------------------------------------------------------------
# TGAA's weights: S_k boosted on top of SR (sr_boost_sk) or S_k alone (sk_only), on the example above


def _cfgs(weights="sr_boost_sk", boost=2.0, k=1, nan_policy="first", alpha=None, mu=None):
    from uplr.config import ResampleConfig, TGAAConfig

    return (TGAAConfig(k=k, nan_policy=nan_policy, weights=weights, boost=boost),
            ResampleConfig(lam=LAM, alpha=alpha, mu=mu))


def _sig(z):
    return 1 / (1 + math.exp(-z))


def test_boosted_class_prob_by_hand():
    from uplr.method.resampling import boosted_class_prob

    # S_k = {2}, boost 2: m p N = 10/18 + 5/18 + 2 * 3/18 = 21/18 -> p~ = m p * 18/21 = (1/210, 1/105, 2/63)
    p = boosted_class_prob(P_C, [100, 25, 9], [2], 2.0)
    np.testing.assert_allclose(p, [1 / 210, 1 / 105, 2 / 63], rtol=1e-12)
    assert math.isclose(float(p @ [100, 25, 9]), 1.0)  # still a per-pixel probability
    np.testing.assert_allclose(boosted_class_prob(P_C, [100, 25, 9], [2], 1.0), P_C, rtol=1e-12)
    np.testing.assert_allclose(boosted_class_prob(P_C, [100, 25, 9], [], 2.0), P_C, rtol=1e-12)
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(UplrError, match="tgaa.boost"):
            boosted_class_prob(P_C, [100, 25, 9], [2], bad)


def test_tgaa_weights_sr_boost_sk_by_hand():
    from uplr.method.tgaa import tgaa_weights

    # class 2 is the most uncertain: S_k = [2]. p_i over all classes with p~ = (1/210, 1/105, 2/63):
    # x1: 1/210; x2: 0.6/210 + 0.4/105 = 1/150; x3: 0.5/105 + 0.5 * 2/63 = 13/630
    # fixed mu = 1/150, alpha = 1050: z = (5 - 7, 0, 65/3 - 7) = (-2, 0, 44/3)
    tg, rs = _cfgs(alpha=1050.0, mu=1 / 150)
    w, s_k, info = tgaa_weights(COUNTS, [0.1, 0.2, 0.5], tg, rs)
    assert s_k == [2] and info["S_k"] == [2] and info["weights_mode"] == "sr_boost_sk" and info["boost"] == 2.0
    np.testing.assert_allclose(w, [0.1 + _sig(-2), 0.6, 0.1 + _sig(44 / 3)], rtol=1e-12)
    assert info["p_i_nonzero"] == 3  # every image keeps SR's weight: none falls to the floor


def test_tgaa_weights_sk_only_by_hand():
    from uplr.method.tgaa import tgaa_weights

    # p_i over S_k = {2} only with SR's p_c: x1, x2 hold no class 2 -> 0; x3: 1 * 1/54
    tg, rs = _cfgs(weights="sk_only", alpha=1080.0, mu=1 / 108)
    w, s_k, info = tgaa_weights(COUNTS, [0.1, 0.2, 0.5], tg, rs)
    assert s_k == [2] and info["boost"] is None and info["p_i_nonzero"] == 1
    # z = 1080 * (p - 1/108) = (-10, -10, 20 - 10)
    np.testing.assert_allclose(w, [0.1 + _sig(-10), 0.1 + _sig(-10), 0.1 + _sig(10)], rtol=1e-12)


def test_tgaa_weights_boost_one_is_sr():
    from uplr.method.tgaa import tgaa_weights

    tg, rs = _cfgs(boost=1.0)
    w, _s_k, _info = tgaa_weights(COUNTS, [0.1, 0.2, 0.5], tg, rs)
    np.testing.assert_allclose(w, soft_balance_weights(COUNTS, LAM).p_hat, rtol=1e-12)


def test_class_rate_vs_uniform_by_hand():
    from uplr.method.resampling import class_rate_vs_uniform

    # weights (1, 1, 2): drawn per image (64+36, 16+18, 18) / 4 = (25, 8.5, 4.5); uniform N / 3
    r = class_rate_vs_uniform(np.c_[COUNTS, np.zeros(3)], [1.0, 1.0, 2.0])
    np.testing.assert_allclose(r[:3], [25 / (100 / 3), 8.5 / (25 / 3), 4.5 / 3], rtol=1e-12)
    assert np.isnan(r[3])  # no source pixel


def test_s_k_never_holds_a_class_absent_from_the_source():
    from uplr.method.tgaa import tgaa_candidates, tgaa_weights

    counts = np.array([[5, 0, 3, 0, 1], [0, 0, 2, 0, 4], [7, 0, 0, 0, 0]])  # classes 1 and 3: no source pixel
    ent = [0.2, float("nan"), 0.5, 0.99, 0.1]  # 1 never predicted (ranks first), 3 the most uncertain
    assert tgaa_candidates(counts) == [0, 2, 4]
    for mode in ("sr_boost_sk", "sk_only"):
        tg, rs = _cfgs(weights=mode, k=3)
        _w, s_k, info = tgaa_weights(counts, ent, tg, rs)
        assert s_k == [2, 0, 4] and info["candidates"] == [0, 2, 4]
        # the evaluated set restricts further (e.g. SYNTHIA's 16 classes)
        _w, s_k, _info = tgaa_weights(counts, ent, tg, rs, candidates=[0, 1, 2, 3])
        assert s_k == [2, 0]
    # property: random counts with absent classes, random entropies with NaN, any k and policy
    rng = np.random.default_rng(0)
    for trial in range(200):
        c = int(rng.integers(2, 20))
        counts = rng.integers(0, 50, (int(rng.integers(1, 6)), c)) * (rng.random(c) < 0.6)
        ent = np.where(rng.random(c) < 0.2, np.nan, rng.random(c))
        evaluated = sorted(rng.choice(c, int(rng.integers(1, c + 1)), replace=False).tolist())
        tg, rs = _cfgs(weights=("sr_boost_sk", "sk_only")[trial % 2], k=int(rng.integers(0, c + 1)),
                       nan_policy=("first", "last")[trial % 3 == 0])
        _w, s_k, _info = tgaa_weights(counts, ent, tg, rs, candidates=evaluated)
        present = set(np.flatnonzero(counts.sum(axis=0) > 0).tolist())
        assert set(s_k) <= present & set(evaluated), (counts, s_k)
        assert len(s_k) == min(tg.k, len(present & set(evaluated)))


def test_tgaa_weights_rejects_an_unknown_mode():
    from uplr.method.tgaa import tgaa_weights

    tg, rs = _cfgs(weights="sk")
    with pytest.raises(UplrError, match="tgaa.weights must be one of sr_boost_sk, sk_only"):
        tgaa_weights(COUNTS, [0.1, 0.2, 0.5], tg, rs)
    tg, rs = _cfgs()
    with pytest.raises(UplrError, match="2 class entropies"):
        tgaa_weights(COUNTS, [0.1, 0.2], tg, rs)


def test_weights_for_a_kept_s_k_equal_the_ranked_stage():
    """The rows continuing +TGAA rebuild its weights from the saved S_k: the same numbers, either mode."""
    from uplr.method.tgaa import tgaa_weights, weights_for_s_k

    for mode in ("sr_boost_sk", "sk_only"):
        tg, rs = _cfgs(weights=mode)
        w, s_k, _info = tgaa_weights(COUNTS, [0.1, 0.2, 0.5], tg, rs)
        np.testing.assert_array_equal(weights_for_s_k(COUNTS, s_k, tg, rs)[0], w)
