"""evaluate_folder against cityscapesScripts' own pixel-level evaluation on the real val frame."""

from __future__ import annotations

import copy
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval
from cityscapesscripts.helpers.labels import labels as cs_labels
from PIL import Image

from uplr.errors import UplrError
from uplr.evaluate.folder import confusion_from_pairs, evaluate_folder, pair_histogram, write_result

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


def test_pair_histogram_hand_counted():
    gt = np.array([[7, 7, 0], [26, 26, 7]], dtype=np.uint8)
    pred = np.array([[0, 1, 255], [13, 13, 0]], dtype=np.uint8)
    h = pair_histogram(gt, pred)
    assert h.shape == (256, 256) and h.dtype == np.int64
    expected = {(7, 0): 2, (7, 1): 1, (0, 255): 1, (26, 13): 2}  # (7, 0) twice: a run and a lone pixel
    assert {(int(g), int(p)): int(h[g, p]) for g, p in zip(*np.nonzero(h), strict=True)} == expected
    assert pair_histogram(gt[:1, :1], pred[:1, :1])[7, 0] == 1
    assert pair_histogram(gt[:0], pred[:0]).sum() == 0


def test_pair_histogram_matches_pixel_count_on_runs_and_noise():
    rng = np.random.default_rng(0)
    gt = np.repeat(rng.integers(0, 34, size=(37, 9)), 7, axis=1).astype(np.uint8)  # runs of 7 ...
    pred = rng.integers(0, 256, size=gt.shape).astype(np.uint8)  # ... against noise
    pred[5:20] = 3  # and long runs in both
    brute = np.zeros((256, 256), dtype=np.int64)
    np.add.at(brute, (gt.ravel(), pred.ravel()), 1)
    assert np.array_equal(pair_histogram(gt, pred), brute)


def test_confusion_from_pairs_hand_computed():
    lut = np.full(256, 255, dtype=np.uint8)
    lut[7], lut[26] = 0, 13  # road, car; every other labelId is not scored
    h = np.zeros((256, 256), dtype=np.int64)
    h[7, 0], h[7, 1], h[7, 255], h[26, 13], h[26, 0], h[0, 5] = 5, 2, 3, 4, 1, 9
    conf = confusion_from_pairs(h, lut, num_classes=19)
    assert conf.shape == (19, 20)
    assert conf[0, 0] == 5 and conf[0, 1] == 2 and conf[0, 19] == 3  # 255 -> the void column
    assert conf[13, 13] == 4 and conf[13, 0] == 1
    assert conf.sum() == 15  # labelId 0 (not scored) dropped


@pytest.mark.parametrize("workers", [1, 3])
def test_same_scores_with_any_worker_count(tmp_path, workers):
    gt_dir, pred_dir, _ = _make_case(tmp_path, 4, seed=7)
    assert evaluate_folder(pred_dir, gt_dir, workers=workers) == evaluate_folder(pred_dir, gt_dir, workers=2)


def test_palette_and_16_bit_predictions_read_like_grayscale(tmp_path):
    gt_dir, pred_dir, pairs = _make_case(tmp_path, 2, seed=3)
    ref = evaluate_folder(pred_dir, gt_dir)
    p0, p1 = (next(pred_dir.rglob(f"{gt.name[: -len('_gtFine_labelIds.png')]}*.png")) for gt, _ in pairs)
    pal = Image.fromarray(pairs[0][1].astype(np.uint8), mode="L").convert("P")  # index = trainId
    pal.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
    pal.save(p0)
    Image.fromarray(pairs[1][1].astype(np.uint16)).save(p1)  # 16-bit grayscale
    assert Image.open(p0).mode == "P" and Image.open(p1).mode.startswith("I")
    assert evaluate_folder(pred_dir, gt_dir) == ref
    big = pairs[1][1].astype(np.uint16)
    big[0, 0] = 300
    Image.fromarray(big).save(p1)
    msg = _error(pred_dir, gt_dir)
    assert str(p1) in msg and "[300]" in msg


def test_truncated_png(tmp_path):
    gt_dir, pred_dir, _ = _make_case(tmp_path, 1)
    p = next(pred_dir.rglob(f"{FRAME}*.png"))
    p.write_bytes(p.read_bytes()[:-40])
    msg = _error(pred_dir, gt_dir)
    assert str(p) in msg and "not a readable PNG" in msg


def test_scoring_a_folder_does_not_import_torch_or_mlflow(tmp_path):
    gt_dir, pred_dir, _ = _make_case(tmp_path, 1)
    code = (
        "import sys; from uplr.cli import main; "
        f"rc = main(['evaluate', '--pred-dir', {str(pred_dir)!r}, '--gt-dir', {str(gt_dir)!r}]); "
        "print('HEAVY', sorted(m for m in ('torch', 'mlflow', 'tqdm') if m in sys.modules)); sys.exit(rc)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "HEAVY []" in r.stdout  # tqdm only on a terminal
    assert "mIoU[19]" in r.stdout
