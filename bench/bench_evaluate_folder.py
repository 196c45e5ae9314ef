"""Benchmark: ``uplr evaluate --pred-dir`` vs cityscapesScripts' evaluator vs just decoding the PNGs.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_evaluate_folder.py [--images 50] [--repeat 3]

Builds ``--images`` Cityscapes-sized (2048 x 1024) ground-truth maps from the real val frame in
tests/fixtures (each one flipped and shifted differently, so no two files are the same) and a trainId
prediction for each (the ground truth with blocks of wrong classes and of "no prediction", so the PNGs
compress like real predictions, not like noise). The same predictions are also written as labelIds,
the format cityscapesScripts reads. Then, in one process, best of ``--repeat``:

* ours: :func:`uplr.evaluate.folder.evaluate_folder` (in-process);
* cityscapesScripts: ``evalPixelLevelSemanticLabeling.evaluateImgLists`` on the same maps
  (in-process, its Cython confusion-matrix helper if built, as installed);
* decode: a bare loop that decodes every ground-truth and prediction PNG (PIL, one thread), nothing else;
* the CLI: ``uplr evaluate --pred-dir ... --gt-dir ...`` as a subprocess, and its start-up alone.

Checks that both evaluators give the same IoU and prints the ratios against the targets:
ours >= 2x as fast as cityscapesScripts, ours <= 1.2x the decode time. The machine's load (other
processes) moves every number; compare ratios from one run, not times across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
FRAME = REPO / "tests/fixtures/samples/cityscapes/gtFine/val/frankfurt/frankfurt_000000_000294_gtFine_labelIds.png"
CITIES = ("frankfurt", "lindau", "munster")


def make_data(root: Path, n: int, seed: int) -> tuple[Path, Path, list[tuple[str, str]]]:
    """gt folder, trainId prediction folder, and (labelId prediction, gt) file pairs for cityscapesScripts."""
    from uplr.data.labels import labelid_to_trainid_lut, trainid_to_labelid

    to_train, to_label = labelid_to_trainid_lut(), trainid_to_labelid()
    base = np.array(Image.open(FRAME))
    rng = np.random.default_rng(seed)
    gt_dir, pred_dir, cs_dir = root / "gtFine" / "val", root / "pred", root / "cs_pred"
    pairs = []
    for i in range(n):
        city = CITIES[i % len(CITIES)]
        name = f"{city}_{i:06d}_000019"
        gt = base[:, ::-1] if i % 2 else base
        gt = np.roll(gt, (int(rng.integers(-40, 40)), int(rng.integers(-400, 400))), axis=(0, 1))
        pred = to_train[gt].copy()
        pred[pred == 255] = 0  # a model predicts something everywhere ...
        h, w = gt.shape
        for _ in range(int(rng.integers(20, 60))):  # ... but gets blocks wrong, or leaves them out
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
            dy, dx = int(rng.integers(8, 120)), int(rng.integers(8, 240))
            pred[y : y + dy, x : x + dx] = 255 if rng.random() < 0.1 else int(rng.integers(0, 19))
        paths = (gt_dir / city / f"{name}_gtFine_labelIds.png", pred_dir / city / f"{name}_leftImg8bit.png",
                 cs_dir / f"{name}_pred.png")
        for p, arr in zip(paths, (gt, pred, to_label[pred]), strict=True):
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.ascontiguousarray(arr), mode="L").save(p)
        pairs.append((str(paths[2]), str(paths[0])))
    return gt_dir, pred_dir, pairs


def run_ours(pred_dir: Path, gt_dir: Path) -> dict:
    from uplr.evaluate.folder import evaluate_folder

    return evaluate_folder(pred_dir, gt_dir)


def run_cityscapes(pairs: list[tuple[str, str]]) -> dict:
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval

    args = copy.copy(cs_eval.args)
    args.evalInstLevelScore = False  # needs instanceIds; not part of IoU
    args.JSONOutput = False
    args.quiet = True
    args.colorized = False
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a table of every class
        return cs_eval.evaluateImgLists([p for p, _ in pairs], [g for _, g in pairs], args)


def run_decode(pairs: list[tuple[str, str]], pred_dir: Path) -> int:
    """Decode every gt PNG and every trainId prediction PNG, one after the other; nothing else."""
    total = 0
    preds = sorted(pred_dir.rglob("*.png"))
    for (_, gt), pred in zip(pairs, preds, strict=True):
        for p in (gt, pred):
            with Image.open(p) as im:
                total += np.asarray(im).shape[0]
    return total


def run_cli(pred_dir: Path, gt_dir: Path) -> None:
    uplr = Path(sys.executable).with_name("uplr")
    subprocess.run([str(uplr), "evaluate", "--pred-dir", str(pred_dir), "--gt-dir", str(gt_dir)],
                   check=True, capture_output=True)


def run_cli_startup() -> None:
    uplr = Path(sys.executable).with_name("uplr")
    subprocess.run([str(uplr), "evaluate", "--help"], check=True, capture_output=True)


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def same_iou(ours: dict, ref: dict) -> float:
    """Largest |difference| of per-class IoU (NaN must meet None)."""
    worst = 0.0
    for name, v in ours["iou"].items():
        theirs = ref["classScores"][name]
        if math.isnan(theirs) or v is None:
            if not (math.isnan(theirs) and v is None):
                return math.inf
            continue
        worst = max(worst, abs(v - theirs))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=50, help="number of 2048x1024 maps (default 50)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each, best kept (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="uplr-bench-eval-") as tmp:
        gt_dir, pred_dir, pairs = make_data(Path(tmp), args.images, args.seed)
        size = sum(f.stat().st_size for f in Path(tmp).rglob("*.png")) / 2**20
        print(f"{args.images} maps of 2048x1024 ({size:.1f} MiB of PNG); {os.cpu_count()} CPUs; "
              f"best of {args.repeat}")
        # one untimed pass of each: imports, page cache
        run_decode(pairs, pred_dir)
        ours, ref = run_ours(pred_dir, gt_dir), run_cityscapes(pairs)
        diff = same_iou(ours, ref)
        miou_cs = ref["averageScoreClasses"]
        print(f"mIoU ours {100 * ours['miou']['19']:.4f}  cityscapesScripts {100 * miou_cs:.4f}  "
              f"largest per-class IoU difference {diff:.2e}")
        if not diff < 1e-9:
            sys.exit("the two evaluators disagree")
        t_dec, _ = best_of(lambda: run_decode(pairs, pred_dir), args.repeat)
        t_ours, _ = best_of(lambda: run_ours(pred_dir, gt_dir), args.repeat)
        t_cs, _ = best_of(lambda: run_cityscapes(pairs), args.repeat)
        t_cli, _ = best_of(lambda: run_cli(pred_dir, gt_dir), args.repeat)
        t_start, _ = best_of(run_cli_startup, args.repeat)
    print(f"  decode only (1 thread)        {t_dec:6.3f} s")
    print(f"  ours, in-process              {t_ours:6.3f} s")
    print(f"  cityscapesScripts, in-process {t_cs:6.3f} s")
    print(f"  ours, `uplr evaluate` CLI     {t_cli:6.3f} s  (start-up alone: `uplr evaluate --help` {t_start:.3f} s)")
    print(f"speed vs cityscapesScripts: in-process {t_cs / t_ours:.2f}x, CLI {t_cs / t_cli:.2f}x  (target >= 2x)")
    print(f"time vs decode only:        in-process {t_ours / t_dec:.2f}x, CLI {t_cli / t_dec:.2f}x  (target <= 1.2x)")


if __name__ == "__main__":
    main()
