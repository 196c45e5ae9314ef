"""Benchmark: memory of the two-pass pseudo-label writer does not grow with the number of target images.

Runs ``pseudo_label_pass`` with a fake ``predict`` that yields random softmax maps (``--classes`` x
``--size``, made on the fly from a per-image seed, so the input itself holds no memory) for N and for
``--factor`` x N images, each in a fresh subprocess, and reports per run

* peak RSS of the process (``resource.getrusage(RUSAGE_SELF).ru_maxrss``), and its growth over the
  RSS measured just before the pass (after imports and one warm-up map);
* the peak of Python-side allocations during the pass (``tracemalloc``; numpy arrays included, torch
  tensors not).

The N-image run is the baseline; the ratios 10N / N are printed (target <= 1.2x).
Run: .venv/bin/python bench/bench_pseudo_memory.py [--images 20 --factor 10 --method gmm]
At the real benchmarks' size (target maps of 1024x512, 19 classes: what the pseudo_label stage of
pipelines/*/dvc.yaml streams): ``--full-size`` (= ``--size 512x1024 --classes 19``; minutes: every map
is made twice, once per pass).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(args: argparse.Namespace) -> None:
    import logging
    import tracemalloc

    import torch

    from uplr.method.pseudo import build_selector
    from uplr.method.pseudo_pass import pseudo_label_pass

    logging.disable(logging.INFO)
    torch.set_num_threads(1)
    h, w = (int(v) for v in args.size.split("x"))

    def make(i: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(i)
        return torch.softmax(torch.randn(args.classes, h, w, generator=g) * 3.0, dim=0)

    def predict():
        return ((f"city{i % 7}/img{i:06d}", make(i)) for i in range(args.child))

    make(0)  # warm-up: allocator, kernels
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        summary = pseudo_label_pass(predict, build_selector(args.method), Path(tmp) / "pseudo",
                                    save_confidence=args.save_confidence)
    seconds = time.perf_counter() - t0
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"images": summary["num_images"], "rss_before_kb": before, "rss_peak_kb": peak,
                      "py_peak_bytes": py_peak, "seconds": seconds}))


def run(n: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", str(n), "--classes", str(args.classes), "--size", args.size,
           "--method", args.method] + (["--save-confidence"] if args.save_confidence else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=20, help="N (the baseline run)")
    ap.add_argument("--factor", type=int, default=10, help="the second run has factor x N images")
    ap.add_argument("--classes", type=int, default=19)
    ap.add_argument("--size", default="128x256", help="H x W of the fake softmax maps")
    ap.add_argument("--full-size", action="store_true", help="the real target size: 512x1024, 19 classes")
    ap.add_argument("--method", default="gmm")
    ap.add_argument("--save-confidence", action="store_true")
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.full_size:
        args.size, args.classes = "512x1024", 19
    if args.child:
        child(args)
        return
    print(f"pseudo-label pass, {args.classes} classes x {args.size} (H x W) maps, selector {args.method}")
    small = run(args.images, args)
    large = run(args.images * args.factor, args)
    for r in (small, large):
        print(f"{r['images']:6d} images: peak RSS {r['rss_peak_kb'] / 1024:8.1f} MiB "
              f"(+{(r['rss_peak_kb'] - r['rss_before_kb']) / 1024:6.1f} MiB during the pass), "
              f"python-side peak {r['py_peak_bytes'] / 1024:8.1f} KiB, {r['seconds']:.1f} s")
    grow_small = max(small["rss_peak_kb"] - small["rss_before_kb"], 1)
    grow_large = large["rss_peak_kb"] - large["rss_before_kb"]
    print(f"ratio {args.factor}N / N: peak RSS {large['rss_peak_kb'] / small['rss_peak_kb']:.3f}x (target <= 1.2x), "
          f"RSS growth during the pass {grow_large / grow_small:.3f}x, "
          f"python-side peak {large['py_peak_bytes'] / small['py_peak_bytes']:.3f}x")


if __name__ == "__main__":
    main()
