"""Benchmark: the cost of the non-finite checks in a training step (issue 11 item 2).

Each step of :class:`uplr.train.loop.Trainer` screens the gradients before the optimiser steps and the
weights plus BatchNorm statistics after it (:func:`uplr.train.loop._finite`). This times one SGD step of
the embedded benchmark's model (``resnet18_half``, multi-level, 19 classes, batch 4 at 80 x 160) with and
without those two screens, interleaved in the same run, and prints the medians and their ratio
(target: <= 1.05, i.e. at most 5 % slower).
Run: .venv/bin/python bench/bench_step_checks.py [--steps 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from uplr.model.deeplab import build_model
from uplr.train.guards import finite as _finite
from uplr.train.loop import seg_loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model("resnet18_half", 19, True, True, False)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(4, 3, 80, 160), torch.randint(0, 19, (4, 80, 160))

    def step(check: bool) -> None:
        opt.zero_grad(set_to_none=True)
        seg_loss(model(x), y, 0.1).backward()
        if check:
            assert _finite([p.grad for p in model.parameters() if p.grad is not None])
        opt.step()
        if check:
            assert _finite([t.detach() for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()])

    times: dict[bool, list[float]] = {False: [], True: []}
    step(False), step(True)  # warm-up
    for _ in range(args.steps):
        for check in (False, True):
            t0 = time.perf_counter()
            step(check)
            times[check].append(time.perf_counter() - t0)
    base, checked = statistics.median(times[False]), statistics.median(times[True])
    print(f"threads {torch.get_num_threads()}, {args.steps} steps each, interleaved")
    print(f"step without checks: {base * 1000:.1f} ms (median)")
    print(f"step with checks:    {checked * 1000:.1f} ms (median)")
    print(f"ratio: {checked / base:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
