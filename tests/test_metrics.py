"""Metrics against scikit-learn, hand-computed cases and an independent bilinear resize (OpenCV)."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import jaccard_score

from uplr.evaluate.metrics import (
    VOID,
    ConfusionMeter,
    confusion_matrix,
    mean_iou,
    per_class_iou,
    pixel_accuracy,
    summarize,
    upsample_logits_to,
)

NC = 19
S16 = (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18)
S13 = (0, 1, 2, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18)


def _random_maps(rng: np.random.Generator, shape=(3, 40, 50), nc=NC):
    """gt with ~15% ignore; pred with ~5% 255 and a few other out-of-range values."""
    gt = rng.integers(0, nc, size=shape)
    gt[rng.random(shape) < 0.15] = 255
    pred = np.where(rng.random(shape) < 0.4, gt, rng.integers(0, nc, size=shape))
    pred[rng.random(shape) < 0.05] = 255
    pred[rng.random(shape) < 0.01] = nc + 3
    pred[gt == 255] = rng.integers(0, nc, size=shape)[gt == 255]
    return pred.astype(np.uint8), gt.astype(np.uint8)


def test_confusion_matrix_matches_sklearn():
    rng = np.random.default_rng(0)
    pred, gt = _random_maps(rng)
    conf = confusion_matrix(pred, gt, num_classes=NC)
    assert conf.shape == (NC, NC + 1) and conf.dtype == np.int64
    valid = gt.ravel() != 255
    g, p = gt.ravel()[valid], pred.ravel()[valid]
    # sklearn drops pairs whose prediction is not among `labels`: that is our square part
    np.testing.assert_array_equal(conf[:, :NC], sk_confusion_matrix(g, p, labels=list(range(NC))))
    # every non-ignored gt pixel is counted once: out-of-range predictions land in the void column
    np.testing.assert_array_equal(conf.sum(axis=1), np.bincount(g, minlength=NC))
    oor = p >= NC
    np.testing.assert_array_equal(conf[:, VOID], np.bincount(g[oor], minlength=NC))
    assert oor.sum() > 0
    # torch tensors give the same matrix
    np.testing.assert_array_equal(confusion_matrix(torch.from_numpy(pred), torch.from_numpy(gt)), conf)


def test_confusion_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="trainIds"):
        confusion_matrix(np.zeros((2, 2)), np.array([[0, 26], [255, 1]]))


def test_per_class_iou_matches_sklearn_jaccard():
    rng = np.random.default_rng(1)
    pred, gt = _random_maps(rng)
    # make two classes absent from both gt and prediction, and one predicted but absent from gt
    for c, repl in ((4, 5), (11, 12)):
        gt[gt == c] = repl
        pred[pred == c] = repl
    gt[gt == 7] = 8
    iou = per_class_iou(confusion_matrix(pred, gt, num_classes=NC))
    valid = gt.ravel() != 255
    g, p = gt.ravel()[valid], pred.ravel()[valid]
    present = sorted(set(g.tolist()) | (set(p.tolist()) & set(range(NC))))
    assert 4 not in present and 11 not in present and 7 in present
    # sklearn counts a prediction outside `labels` (255, 22) as a false negative of the true class
    expected = jaccard_score(g, p, labels=present, average=None)
    np.testing.assert_allclose(iou[present], expected, rtol=0, atol=1e-12)
    assert np.isnan(iou[4]) and np.isnan(iou[11])
    assert iou[7] == 0.0
    assert np.isnan(iou).sum() == 2


def test_hand_computed_three_classes():
    gt = np.array([0, 0, 0, 1, 1, 1, 255, 255])
    pred = np.array([0, 0, 1, 1, 0, 255, 1, 2])
    conf = confusion_matrix(pred, gt, num_classes=3)
    # class 0: TP 2, FN 1 (pixel 2), FP 1 (pixel 4) -> 2/4
    # class 1: TP 1, FN 2 (pixel 4, pixel 5 predicted 255), FP 1 (pixel 2) -> 1/4
    # class 2: predicted only on ignored pixels -> union 0 -> NaN
    iou = per_class_iou(conf)
    np.testing.assert_allclose(iou[:2], [0.5, 0.25])
    assert np.isnan(iou[2])
    assert mean_iou(iou, (0, 1, 2)) == pytest.approx(0.375)
    assert pixel_accuracy(conf) == pytest.approx(3 / 6)
    # the same without the void column: the 255 prediction is then simply not counted
    np.testing.assert_allclose(per_class_iou(conf[:, :3])[:2], [2 / 4, 1 / 3])
    # a class predicted on valid pixels but absent from gt has IoU 0, not NaN
    iou2 = per_class_iou(confusion_matrix(np.array([2, 0]), np.array([0, 0]), num_classes=3))
    assert iou2[2] == 0.0 and iou2[0] == 0.5 and np.isnan(iou2[1])
    assert math.isnan(mean_iou(iou2, (1,)))


def test_mean_iou_subsets_vs_manual_nanmean():
    rng = np.random.default_rng(2)
    iou = rng.random(NC)
    iou[[3, 9, 12]] = np.nan
    for subset in (tuple(range(NC)), S16, S13):
        vals = [iou[i] for i in subset if not math.isnan(iou[i])]
        assert mean_iou(iou, subset) == pytest.approx(sum(vals) / len(vals), abs=1e-15)


def test_subset_miou_comes_from_per_class_iou_not_rescaling():
    rng = np.random.default_rng(3)
    pred, gt = _random_maps(rng, shape=(2, 30, 30))
    conf = confusion_matrix(pred, gt)
    iou = per_class_iou(conf)
    assert not np.isnan(iou).any() and iou[[9, 14, 16]].min() > 0
    names = [f"c{i}" for i in range(NC)]
    res = summarize(conf, names, {"19": tuple(range(NC)), "16": S16, "13": S13})
    m16 = sum(iou[i] for i in S16) / 16
    m13 = sum(iou[i] for i in S13) / 13
    assert res["miou"]["16"] == pytest.approx(m16, abs=1e-12)
    assert res["miou"]["13"] == pytest.approx(m13, abs=1e-12)
    # rescaling the 19-class mean would give another number here
    assert abs(res["miou"]["19"] * 19 / 16 - m16) > 1e-3


def test_summarize_is_json_friendly():
    conf = confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), num_classes=3)
    res = summarize(conf, ["a", "b", "c"], {"all": (0, 1, 2), "none": (2,)})
    json.dumps(res, allow_nan=False)
    assert res["iou"] == {"a": 0.5, "b": 0.5, "c": None}
    assert res["miou"] == {"all": 0.5, "none": None}
    assert res["pixel_accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        summarize(conf, ["a", "b"], {})


def _meter_matches(device: str) -> None:
    rng = np.random.default_rng(4)
    meter = ConfusionMeter(NC, device)
    expected = np.zeros((NC, NC + 1), dtype=np.int64)
    for shape in ((2, 17, 23), (1, 31, 9), (4, 8, 8)):
        pred, gt = _random_maps(rng, shape=shape)
        meter.update(torch.from_numpy(pred).to(device).long(), torch.from_numpy(gt).to(device))
        expected += confusion_matrix(pred, gt)
    np.testing.assert_array_equal(meter.value, expected)
    meter.reset()
    assert meter.value.sum() == 0


def test_confusion_meter_equals_confusion_matrix():
    _meter_matches("cpu")
    with pytest.raises(ValueError):
        ConfusionMeter(3).update(torch.zeros(2, 2), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="trainIds"):
        ConfusionMeter(3).update(torch.zeros(2), torch.tensor([1, 7]))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_confusion_meter_on_cuda():
    _meter_matches("cuda")


def test_upsample_logits_matches_opencv_bilinear():
    rng = np.random.default_rng(5)
    logits = torch.from_numpy(rng.standard_normal((2, 4, 6, 10)).astype(np.float32))
    up = upsample_logits_to(logits, (24, 40))
    assert up.shape == (2, 4, 24, 40)
    for n in range(2):
        for c in range(4):
            ref = cv2.resize(logits[n, c].numpy(), (40, 24), interpolation=cv2.INTER_LINEAR)
            np.testing.assert_allclose(up[n, c].numpy(), ref, atol=1e-5)
    assert upsample_logits_to(logits, (6, 10)) is logits
    with pytest.raises(ValueError):
        upsample_logits_to(logits[0], (12, 20))
