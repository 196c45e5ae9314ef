"""evaluate_folder against cityscapesScripts' own pixel-level evaluation on the real val frame."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval
from cityscapesscripts.helpers.labels import labels as cs_labels
from PIL import Image

from uplr.errors import UplrError
from uplr.evaluate.folder import evaluate_folder, write_result

SAMPLE = Path(__file__).resolve().parent / "fixtures/samples/cityscapes/gtFine/val/frankfurt"
FRAME = "frankfurt_000000_000294"
# trainIds absent from the sample's ground truth (labelIds 7 8 11 13 17 20 21 23 24 26 present)
NEVER_PREDICTED = (3, 16)  # absent from gt and prediction -> NaN in both implementations
TRAIN_NAMES = {lab.trainId: lab.name for lab in cs_labels if 0 <= lab.trainId < 19}
TRAIN_TO_LABEL = np.zeros(256, dtype=np.uint8)  # 255 (no prediction) -> labelId 0 "unlabeled"
for _lab in cs_labels:
    if 0 <= _lab.trainId < 19:
        TRAIN_TO_LABEL[_lab.trainId] = _lab.id
SUBSETS = {
    "19": tuple(range(19)),
    "16": (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18),
    "13": (0, 1, 2, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18),
}

pytestmark = pytest.mark.skipif(not SAMPLE.is_dir(), reason="Cityscapes sample fixture not present")


def _save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8), mode="L").save(path)


def _make_case(
    tmp_path: Path, n_images: int, seed: int = 0
) -> tuple[Path, Path, list[tuple[Path, np.ndarray]]]:
    """gt folder with copies of the real frame (some flipped), and seeded random trainId predictions."""
    gt_src = np.array(Image.open(SAMPLE / f"{FRAME}_gtFine_labelIds.png"))
    names = [FRAME, "frankfurt_000000_000295", "lindau_000001_000019", "munster_000002_000019"][:n_images]
    rng = np.random.default_rng(seed)
    allowed = np.array([c for c in range(19) if c not in NEVER_PREDICTED] + [255])
    gt_dir, pred_dir, pairs = tmp_path / "gtFine" / "val", tmp_path / "pred", []
    for i, name in enumerate(names):
        city = name.split("_")[0]
        gt = gt_src if i % 2 == 0 else gt_src[:, ::-1]
        gt_path = gt_dir / city / f"{name}_gtFine_labelIds.png"
        _save(gt_path, gt)
        pred = allowed[rng.integers(0, len(allowed), size=gt.shape)]
        # nested layout and both accepted file-name forms
        pred_name = f"{name}_leftImg8bit.png" if i % 2 == 0 else f"{name}.png"
        _save(pred_dir / "nested" / city / pred_name, pred)
        pairs.append((gt_path, pred))
    return gt_dir, pred_dir, pairs


def _cityscapes_scores(tmp_path: Path, pairs: list[tuple[Path, np.ndarray]]) -> dict:
    """Run the official evaluation on the same predictions converted to labelIds."""
    pred_files, gt_files = [], []
    for gt_path, pred in pairs:
        p = tmp_path / "cs_pred" / gt_path.name.replace("_gtFine_labelIds", "_pred")
        _save(p, TRAIN_TO_LABEL[pred])
        pred_files.append(str(p))
        gt_files.append(str(gt_path))
    args = copy.copy(cs_eval.args)
    args.evalInstLevelScore = False  # needs instanceIds; not part of IoU
    args.JSONOutput = False
    args.quiet = True
    args.colorized = False
    return cs_eval.evaluateImgLists(pred_files, gt_files, args)


@pytest.mark.parametrize("n_images", [1, 4])
def test_matches_cityscapes_scripts(tmp_path, n_images):
    gt_dir, pred_dir, pairs = _make_case(tmp_path, n_images, seed=n_images)
    ours = evaluate_folder(pred_dir, gt_dir)
    ref = _cityscapes_scores(tmp_path, pairs)
    assert ours["n_images"] == n_images
    assert set(ours["iou"]) == set(TRAIN_NAMES.values())
    for name in TRAIN_NAMES.values():
        theirs = ref["classScores"][name]
        if math.isnan(theirs):
            assert ours["iou"][name] is None, name
        else:
            assert ours["iou"][name] == pytest.approx(theirs, abs=1e-6), name
    assert [ours["iou"][TRAIN_NAMES[c]] for c in NEVER_PREDICTED] == [None, None]
    assert ours["miou"]["19"] == pytest.approx(ref["averageScoreClasses"], abs=1e-6)
    for subset, ids in SUBSETS.items():
        vals = [ref["classScores"][TRAIN_NAMES[c]] for c in ids]
        assert ours["miou"][subset] == pytest.approx(np.nanmean(vals), abs=1e-6), subset
    # pixel accuracy from the raw arrays, over pixels whose gt is an evaluated class
    lut = np.full(256, 255, dtype=np.int64)
    for lab in cs_labels:
        if 0 <= lab.trainId < 19:
            lut[lab.id] = lab.trainId
    correct = total = 0
    for gt_path, pred in pairs:
        gt = lut[np.array(Image.open(gt_path))]
        valid = gt != 255
        correct += int((pred[valid] == gt[valid]).sum())
        total += int(valid.sum())
    assert ours["pixel_accuracy"] == pytest.approx(correct / total, abs=1e-12)


def test_write_result_is_strict_json(tmp_path):
    gt_dir, pred_dir, _ = _make_case(tmp_path, 1)
    result = evaluate_folder(pred_dir, gt_dir, subsets=("19", "nthu13"))
    out = tmp_path / "out" / "result.json"
    write_result(result, out)
    loaded = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert loaded == result
    assert set(loaded["miou"]) == {"19", "nthu13"}
    assert [p.name for p in out.parent.iterdir()] == ["result.json"]


def _error(pred_dir: Path, gt_dir: Path, **kw) -> str:
    with pytest.raises(UplrError) as exc:
        evaluate_folder(pred_dir, gt_dir, **kw)
    return str(exc.value)


def test_missing_prediction(tmp_path):
    gt_dir, pred_dir, _ = _make_case(tmp_path, 2)
    next(pred_dir.rglob("frankfurt_000000_000295*.png")).unlink()
    assert "frankfurt_000000_000295_gtFine_labelIds.png" in _error(pred_dir, gt_dir)


def test_wrong_size(tmp_path):
    gt_dir, pred_dir, _ = _make_case(tmp_path, 2)
    p = next(pred_dir.rglob(f"{FRAME}*.png"))
    _save(p, np.zeros((64, 128), dtype=np.uint8))
    msg = _error(pred_dir, gt_dir)
    assert str(p) in msg and "upsample" in msg


def test_out_of_range_value(tmp_path):
    gt_dir, pred_dir, pairs = _make_case(tmp_path, 2)
    p = next(pred_dir.rglob(f"{FRAME}*.png"))
    pred = pairs[0][1].copy()
    pred[0, 0] = 19
    _save(p, pred)
    msg = _error(pred_dir, gt_dir)
    assert str(p) in msg and "[19]" in msg


def test_unreadable_png(tmp_path):
    gt_dir, pred_dir, _ = _make_case(tmp_path, 1)
    p = next(pred_dir.rglob(f"{FRAME}*.png"))
    p.write_bytes(b"not a png")
    assert str(p) in _error(pred_dir, gt_dir)


def test_rgb_prediction(tmp_path):
    gt_dir, pred_dir, _ = _make_case(tmp_path, 1)
    p = next(pred_dir.rglob(f"{FRAME}*.png"))
    Image.new("RGB", (256, 128)).save(p)
    assert str(p) in _error(pred_dir, gt_dir)


def test_empty_gt_folder(tmp_path):
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    assert str(tmp_path / "gt") in _error(tmp_path / "pred", tmp_path / "gt")


def test_ambiguous_prediction(tmp_path):
    gt_dir, pred_dir, _ = _make_case(tmp_path, 1)
    p = next(pred_dir.rglob(f"{FRAME}*.png"))
    shutil.copy(p, pred_dir / f"{FRAME}_other.png")
    assert "several predictions" in _error(pred_dir, gt_dir)


def test_prefix_needs_separator_and_unknown_subset(tmp_path):
    gt_dir, pred_dir, _ = _make_case(tmp_path, 1)
    p = next(pred_dir.rglob(f"{FRAME}*.png"))
    p.rename(p.with_name(f"{FRAME}9.png"))  # another frame's name, not this one's prediction
    assert f"{FRAME}_gtFine_labelIds.png" in _error(pred_dir, gt_dir)
    msg = _error(pred_dir, gt_dir, subsets=("19", "17"))
    assert "subset" in msg and "'17'" in msg
