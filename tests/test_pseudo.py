"""Pseudo-label selectors, streamed statistics, the two-pass writer and the quality report
(uplr.method.pseudo)."""

from __future__ import annotations

import json
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import entropy as scipy_entropy
from sklearn.mixture import GaussianMixture

from uplr.errors import UplrError
from uplr.evaluate.pseudo_quality import quality_report
from uplr.method.pseudo import PixelStats, build_selector
from uplr.method.pseudo_pass import pseudo_label_pass
from uplr.report.figures import plot_quality

BINS = 1000
TOL = 1.0 / BINS + 1e-9  # quantiles from histograms are exact up to one bin width


def _prob_map(pixels: list[tuple[float, ...]]) -> torch.Tensor:
    """C x 1 x W float64 map from per-pixel probability vectors written by hand."""
    arr = np.asarray(pixels, dtype=np.float64)
    np.testing.assert_allclose(arr.sum(axis=1), 1.0)
    return torch.from_numpy(arr.T.copy()).unsqueeze(1)


def _one_hotish(cls: int, conf: float, num: int = 3) -> tuple[float, ...]:
    """conf on ``cls``, the rest spread evenly."""
    rest = (1.0 - conf) / (num - 1)
    return tuple(conf if c == cls else rest for c in range(num))


def _fit(method: str, prob: torch.Tensor, **params):
    sel = build_selector(method, bins=BINS, **params)
    stats = PixelStats(prob.shape[0], bins=BINS)
    stats.update(prob)
    sel.fit(stats)
    return sel


def _random_maps(n: int, num: int, h: int, w: int, seed: int) -> list[torch.Tensor]:
    """Softmax maps whose pixels are a mix of confident and unsure ones (bimodal entropy per class)."""
    g = torch.Generator().manual_seed(seed)
    maps = []
    for _ in range(n):
        cls = torch.randint(0, num, (h, w), generator=g)
        sure = torch.rand(h, w, generator=g) < 0.6
        scale = torch.where(sure, torch.full((h, w), 7.0), torch.full((h, w), 1.2))
        logits = torch.randn(num, h, w, generator=g) * 0.6
        logits += torch.nn.functional.one_hot(cls, num).permute(2, 0, 1) * scale
        maps.append(torch.softmax(logits, dim=0))
    return maps


# ---------------------------------------------------------------- statistics


def test_pixel_stats_match_numpy_histograms():
    num, bins = 4, 64
    maps = _random_maps(2, num, 16, 24, seed=0)
    stats = PixelStats(num, bins=bins)
    stats.update(maps[0])  # C x H x W
    stats.update(torch.stack(maps[1:]))  # N x C x H x W
    p = torch.stack(maps).double().numpy().transpose(1, 0, 2, 3).reshape(num, -1)
    pred, conf = p.argmax(axis=0), p.max(axis=0)
    ent = scipy_entropy(p, axis=0) / math.log(num)
    for c in range(num):
        np.testing.assert_array_equal(stats.entropy_hist[c].numpy(),
                                      np.histogram(ent[pred == c], bins=bins, range=(0, 1))[0])
        np.testing.assert_array_equal(stats.confidence_hist[c].numpy(),
                                      np.histogram(conf[pred == c], bins=bins, range=(0, 1))[0])
    assert stats.num_images == 2
    np.testing.assert_array_equal(stats.class_counts, np.bincount(pred, minlength=num))


def test_pixel_stats_size_does_not_grow_and_round_trips():
    stats = PixelStats(19, bins=256)
    stats.update(_random_maps(1, 19, 8, 8, seed=1)[0])
    size = stats.nbytes
    for m in _random_maps(30, 19, 8, 8, seed=2):
        stats.update(m)
    assert stats.nbytes == size == 2 * 19 * 256 * 8
    state = stats.state_dict()
    other = PixelStats(19, bins=256)
    other.load_state_dict(state)
    assert torch.equal(other.entropy_hist, stats.entropy_hist) and other.num_images == 31
    assert stats.all_reduce() is stats  # no process group: a no-op
    with pytest.raises(UplrError):
        stats.update(torch.rand(3, 8, 8))
    with pytest.raises(UplrError):
        PixelStats(19, bins=128).load_state_dict(state)


# ---------------------------------------------------------------- baselines, by hand


def test_threshold_selector_hand_made():
    prob = _prob_map([_one_hotish(0, 0.95), _one_hotish(1, 0.9), _one_hotish(2, 0.89),
                      _one_hotish(1, 0.5), _one_hotish(2, 0.99)])
    sel = build_selector("threshold")  # default 0.9, keep conf >= 0.9
    assert sel.assign(prob)[0].tolist() == [0, 1, 255, 255, 2]
    sel = build_selector("threshold", threshold=0.6)
    out = sel.assign(prob)
    assert out.dtype == torch.uint8 and out.shape == (1, 5)
    assert out[0].tolist() == [0, 1, 2, 255, 2]


def test_bdl_selector_median_and_cap():
    # class 0: [0.95, 0.85, 0.65]        -> median (ascending index floor(3/2)=1) 0.85
    # class 1: [0.99 .. 0.89], 6 pixels  -> ascending [.89 .91 .93 .96 .97 .99], index 3: 0.96 -> cap 0.9
    # class 2: [0.5, 0.6, 0.7, 0.8]      -> ascending index 2: 0.7
    pix = ([(0, 0.95), (0, 0.85), (0, 0.65)]
           + [(1, v) for v in (0.99, 0.97, 0.96, 0.93, 0.91, 0.89)]
           + [(2, v) for v in (0.5, 0.6, 0.7, 0.8)])
    prob = _prob_map([_one_hotish(c, v) for c, v in pix])
    sel = _fit("bdl", prob)
    np.testing.assert_allclose(sel.medians, [0.85, 0.96, 0.7], atol=TOL)
    np.testing.assert_allclose(sel.thresholds, [0.85, 0.9, 0.7], atol=TOL)
    expected = [0, 0, 255] + [1, 1, 1, 1, 1, 255] + [255, 255, 2, 2]
    assert sel.assign(prob)[0].tolist() == expected
    json.dumps(sel.summary(), allow_nan=False)


def test_cbst_selector_rank_and_ratio_argmax():
    pixels = [
        # predicted 0: confidences [0.98, 0.9, 0.7, 0.52]; p = 0.5 -> rank floor(4 * 0.5) = 2 -> t0 = 0.9
        (0.98, 0.01, 0.01), (0.9, 0.05, 0.05), (0.7, 0.15, 0.15), (0.52, 0.47, 0.01),
        # predicted 1: confidences [0.8, 0.45, 0.4, 0.35] -> t1 = 0.45
        (0.1, 0.8, 0.1), (0.3, 0.45, 0.25), (0.3, 0.4, 0.3), (0.33, 0.35, 0.32),
        # predicted 2: one pixel, rank floor(0.5) = 0 -> t2 = 1.0
        (0.15, 0.15, 0.7),
    ]
    prob = _prob_map(pixels)
    sel = _fit("cbst", prob, portion=0.5)
    np.testing.assert_allclose(sel.thresholds, [0.9, 0.45, 1.0], atol=TOL)
    # ratios prob / t: (0.52, 0.47, 0.01) -> (0.58, 1.04, 0.01): class 1 although the argmax is 0
    expected = [0, 0, 255, 1, 1, 1, 255, 255, 255]
    assert sel.assign(prob)[0].tolist() == expected
    sel = _fit("cbst", prob, portion=0.25)  # ranks 1, 1, 0 -> the largest confidences
    np.testing.assert_allclose(sel.thresholds, [0.98, 0.8, 1.0], atol=TOL)


@pytest.mark.parametrize("method", ["bdl", "cbst"])
def test_histogram_thresholds_against_exact_sorting(method):
    num = 5
    prob = torch.cat(_random_maps(3, num, 20, 20, seed=4), dim=2)
    sel = _fit(method, prob, **({"portion": 0.35} if method == "cbst" else {}))
    p = prob.reshape(num, -1).numpy()
    pred, conf = p.argmax(axis=0), p.max(axis=0)
    exact = np.empty(num)
    for c in range(num):
        x = np.sort(conf[pred == c])
        if method == "bdl":
            exact[c] = min(x[len(x) // 2], 0.9)
        else:
            k = int(math.floor(len(x) * 0.35))
            exact[c] = x[::-1][k - 1]
    assert np.all(sel.thresholds <= exact + 1e-7) and np.all(sel.thresholds >= exact - TOL)
    # Labels computed from the exact thresholds agree except on pixels within one bin of a threshold.
    ours = sel.assign(prob).reshape(-1).numpy()
    if method == "bdl":
        ref = np.where(conf >= exact[pred], pred, 255)
        near = np.abs(conf - exact[pred]) < TOL
    else:
        ratio = p / exact[:, None]
        ref = np.where(ratio.max(axis=0) >= 1, ratio.argmax(axis=0), 255)
        near = (np.abs(p - exact[:, None]) < TOL).any(axis=0)
    assert (ours[~near] == ref[~near]).all()
    assert 0 < (ours != 255).sum() < ours.size


# ---------------------------------------------------------------- UPLR's GMM selector


def test_gmm_selector_agrees_with_sklearn_per_class():
    num = 4
    maps = _random_maps(3, num, 48, 48, seed=5)
    sel = build_selector("gmm", bins=4096, tol=1e-10, max_iter=10000)
    stats = PixelStats(num, bins=4096)
    for m in maps:
        stats.update(m)
    sel.fit(stats)
    prob = torch.cat(maps, dim=2)
    ours = sel.assign(prob).reshape(-1).numpy()
    p = prob.reshape(num, -1).double().numpy()
    pred = p.argmax(axis=0)
    ent = scipy_entropy(p, axis=0) / math.log(num)
    ref = np.full(pred.shape, 255)
    params = sel.params
    for c in range(num):
        x = ent[pred == c][:, None]
        gm = GaussianMixture(2, weights_init=[0.5, 0.5], means_init=params.init_means[c].reshape(2, 1),
                             precisions_init=(1 / params.init_variances[c]).reshape(2, 1, 1), tol=1e-10,
                             max_iter=10000, init_params="random_from_data", random_state=0).fit(x)
        np.testing.assert_allclose(params.means[c], np.sort(gm.means_[:, 0]), atol=1e-3)
        lower = int(np.argmin(gm.means_[:, 0]))
        ref[np.flatnonzero(pred == c)[gm.predict_proba(x)[:, lower] > 0.5]] = c
    assert (ours == ref).mean() >= 0.995
    assert 0.2 < (ours != 255).mean() < 0.9
    summary = sel.summary()
    json.dumps(summary, allow_nan=False)
    assert len(summary["classes"]) == num


def test_build_selector_errors():
    with pytest.raises(UplrError) as err:
        build_selector("entropy")
    for name in ("gmm", "threshold", "bdl", "cbst"):
        assert name in str(err.value)
    with pytest.raises(UplrError, match="portion"):
        build_selector("cbst", portion=0.0)
    with pytest.raises(UplrError, match="valid parameters"):
        build_selector("threshold", portion=0.3)
    with pytest.raises(UplrError, match="fit"):
        build_selector("gmm").assign(torch.rand(3, 2, 2))


# ---------------------------------------------------------------- the two-pass writer

NAMES = ["aachen/aachen_000000", "bochum/sub/bochum_000001", "top_level"]


def _predict_factory(maps, names=NAMES, calls=None, fail_on_call=None):
    def predict():
        if calls is not None:
            calls.append(1)
        call = len(calls) if calls is not None else 0

        def gen():
            for i, (n, m) in enumerate(zip(names, maps, strict=True)):
                if fail_on_call == call and i == 1:
                    raise RuntimeError("model crashed")
                yield n, m
        return gen()
    return predict


@pytest.mark.parametrize("method", ["gmm", "threshold", "cbst"])
def test_pseudo_label_pass_writes_label_pngs(tmp_path: Path, method: str):
    maps = _random_maps(3, 5, 12, 20, seed=6)
    calls: list[int] = []
    sel = build_selector(method, bins=256)
    out = tmp_path / "pseudo"
    summary = pseudo_label_pass(_predict_factory(maps, calls=calls), sel, out, save_confidence=True)
    assert len(calls) == (1 if method == "threshold" else 2)
    kept = np.zeros(5, np.int64)
    for name, m in zip(NAMES, maps, strict=True):
        img = Image.open(out / f"{name}.png")
        assert img.mode == "L" and img.size == (20, 12)
        arr = np.asarray(img)
        assert arr.dtype == np.uint8
        assert set(np.unique(arr)) <= set(range(5)) | {255}
        np.testing.assert_array_equal(arr, sel.assign(m).numpy())
        conf = np.load(out / f"{name}_conf.npy")
        assert conf.dtype == np.float16
        np.testing.assert_array_equal(conf, m.max(dim=0).values.numpy().astype(np.float16))
        kept += np.bincount(arr[arr != 255], minlength=5)
    assert summary["kept_pixels"] == kept.tolist()
    assert summary["num_images"] == 3 and sum(summary["predicted_pixels"]) == 3 * 12 * 20
    json.dumps(summary, allow_nan=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pseudo"]  # no temporary leftovers


def test_pseudo_label_pass_leaves_nothing_on_error(tmp_path: Path):
    maps = _random_maps(3, 4, 6, 6, seed=7)
    out = tmp_path / "pseudo"
    with pytest.raises(RuntimeError, match="crashed"):
        pseudo_label_pass(_predict_factory(maps, calls=[], fail_on_call=2), build_selector("gmm"), out)
    assert list(tmp_path.iterdir()) == []
    # An existing output survives a failed rewrite untouched.
    pseudo_label_pass(_predict_factory(maps), build_selector("threshold"), out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(RuntimeError):
        pseudo_label_pass(_predict_factory(maps, calls=[], fail_on_call=2), build_selector("bdl"), out)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pseudo"]


def test_pseudo_label_pass_rejects_bad_streams(tmp_path: Path):
    maps = _random_maps(3, 4, 6, 6, seed=8)
    calls: list[int] = []
    names_by_call = {1: NAMES, 2: ["x", "y", "z"]}

    def changing():
        calls.append(1)
        return iter(list(zip(names_by_call[len(calls)], maps, strict=True)))

    with pytest.raises(UplrError, match="different images"):
        pseudo_label_pass(changing, build_selector("gmm"), tmp_path / "a")
    with pytest.raises(UplrError, match="twice"):
        pseudo_label_pass(_predict_factory(maps, names=["a", "b", "a"]), build_selector("threshold"),
                          tmp_path / "b")
    with pytest.raises(UplrError, match="relative"):
        pseudo_label_pass(_predict_factory(maps, names=["a", "../b", "c"]), build_selector("gmm"),
                          tmp_path / "c")
    with pytest.raises(UplrError, match="no images"):
        pseudo_label_pass(lambda: iter([]), build_selector("gmm"), tmp_path / "d")
    assert list(tmp_path.iterdir()) == []


def test_pseudo_label_pass_python_memory_does_not_grow_with_images(tmp_path: Path):
    def peak(n: int) -> int:
        maps = _random_maps(1, 4, 32, 48, seed=9) * n  # the same map object, n times: no input memory
        names = [f"img{i:04d}" for i in range(n)]
        tracemalloc.start()
        pseudo_label_pass(_predict_factory(maps, names=names), build_selector("gmm", bins=128),
                          tmp_path / f"n{n}")
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    peak(3)  # warm-up: imports and caches
    small, large = peak(6), peak(60)
    print(f"python-side peak: {small} B for 6 images, {large} B for 60")
    assert large - small <= 16 * 1024, (small, large)


# ---------------------------------------------------------------- quality report


def test_quality_report_hand_made(tmp_path: Path):
    gt = [0, 0, 1, 1, 2, 255, 0, 1, 2]
    pred = [0, 0, 1, 0, 2, 0, 1, 1, 2]
    pseudo = [0, 255, 1, 0, 255, 0, 1, 1, 0]  # the last pixel is relabelled (as CBST can): not coverage of 2
    # valid pixels: all but index 5 (gt ignore)
    # class 0: kept {0, 3, 8}, right {0} -> precision 1/3; correct {0, 1}, kept as 0 {0} -> coverage 1/2
    # class 1: kept {2, 6, 7}, right {2, 7} -> 2/3;         correct {2, 7}, both kept -> coverage 1
    # class 2: kept {} -> None;                             correct {4, 8}, none kept as 2 -> coverage 0
    # class 3: never anything -> None, None
    pairs = [(np.array(pseudo[:4]), np.array(pred[:4]), np.array(gt[:4])),
             (torch.tensor(pseudo[4:]), torch.tensor(pred[4:]), torch.tensor(gt[4:]))]
    rep = quality_report(pairs, num_classes=4)
    assert [e["precision"] for e in rep["per_class"]] == pytest.approx([1 / 3, 2 / 3, None, None])
    assert [e["coverage"] for e in rep["per_class"]] == pytest.approx([0.5, 1.0, 0.0, None])
    assert rep["precision"] == pytest.approx(3 / 6) and rep["coverage"] == pytest.approx(3 / 6)
    assert rep["mean_precision"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert rep["mean_coverage"] == pytest.approx(0.5)
    json.dumps(rep, allow_nan=False)

    other = quality_report([(np.array(pred), np.array(pred), np.array(gt))], num_classes=4)
    png = tmp_path / "plots" / "quality.png"
    plot_quality({"gmm": rep, "argmax": other}, ["road", "sidewalk", "building", "wall"], png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in png.parent.iterdir()) == ["quality.png"]
    with pytest.raises(UplrError):
        plot_quality({"gmm": rep}, ["road"], png)
