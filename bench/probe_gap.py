"""Cheap proxy for the domain gap of the embedded benchmark (used to tune uplr/data/_scenes.py).

Trains a small fully convolutional network (4 conv layers + position channels, a few minutes on a
CPU) three times, each scored on target val with a 19-class confusion matrix:

* ``source_only``: on the source images (what adaptation starts from),
* ``source_fda``: on source images whose low-frequency amplitude is swapped with a random target
  training image's (FDA): how much of the gap is low-frequency colour/lighting,
* ``oracle``: on target train (the target-supervised upper bound).

The benchmark needs source_only well below oracle (room for adaptation) and clearly above zero.
With the defaults (seed 2021, 600 iterations, full resolution; about 1 CPU-minute per run, more for
FDA): source_only 23.1, source_fda 23.4, oracle 55.3 mIoU; training seed 1: 24.0 / 53.3; data seed 7:
22.6 / 51.1.

    .venv/bin/python bench/probe_gap.py                      # generate 400/300/100 at 128x256, probe
    .venv/bin/python bench/probe_gap.py --data data/embedded --runs source_only,oracle --train-seed 1
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from cityscapesscripts.helpers.labels import labels as CS_LABELS
from PIL import Image
from torch import nn

from uplr.data.synthetic import CLASSES, generate

log = logging.getLogger("probe_gap")
NC = 19
LUT = np.full(256, 255, np.uint8)
for _lab in CS_LABELS:
    if 0 <= _lab.trainId < NC and not _lab.ignoreInEval:
        LUT[_lab.id] = _lab.trainId


def load_split(root: Path, domain: str, split: str, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Images (N,H,W,3 uint8) and trainIds (N,H,W uint8) read back from the on-disk formats, resized by
    ``scale`` (images: area, labels: nearest)."""
    if domain == "source":
        names = (root / "source" / "all.txt").read_text().split()
        pairs = [(root / "source" / "images" / n, root / "source" / "labels" / n) for n in names]
    else:
        names = (root / "target" / f"{split}.txt").read_text().split()
        pairs = [
            (
                root / "target" / "leftImg8bit" / split / n,
                root / "target" / "gtFine" / split / n.replace("_leftImg8bit.png", "_gtFine_labelIds.png"),
            )
            for n in names
        ]

    def size(im: Image.Image) -> tuple[int, int]:
        return max(int(round(im.width * scale)), 1), max(int(round(im.height * scale)), 1)

    imgs, labs = [], []
    for a, b in pairs:
        im, lab = Image.open(a).convert("RGB"), Image.open(b)
        imgs.append(np.asarray(im.resize(size(im), Image.Resampling.BOX)))
        labs.append(LUT[np.asarray(lab.resize(size(lab), Image.Resampling.NEAREST))])
    return np.stack(imgs), np.stack(labs)


def fda(src: np.ndarray, trg: np.ndarray, beta: float) -> np.ndarray:
    """Swap the centred low-frequency amplitude window (half size floor(min(H,W)*beta)) of src with trg's."""
    fs = np.fft.fftshift(np.fft.fft2(src.astype(np.float64), axes=(0, 1)), axes=(0, 1))
    ft = np.fft.fftshift(np.fft.fft2(trg.astype(np.float64), axes=(0, 1)), axes=(0, 1))
    h, w = src.shape[:2]
    b = int(np.floor(min(h, w) * beta))
    cy, cx = h // 2, w // 2
    amp, pha = np.abs(fs), np.angle(fs)
    amp[cy - b : cy + b + 1, cx - b : cx + b + 1] = np.abs(ft)[cy - b : cy + b + 1, cx - b : cx + b + 1]
    out = np.fft.ifft2(np.fft.ifftshift(amp * np.exp(1j * pha), axes=(0, 1)), axes=(0, 1)).real
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


class TinyFCN(nn.Module):
    """Four 3x3 conv layers (output stride 4, dilations 2 and 4) on RGB plus x/y position channels."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()

        def block(i: int, o: int, stride: int = 1, dil: int = 1) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(i, o, 3, stride, padding=dil, dilation=dil, bias=False),
                nn.BatchNorm2d(o),
                nn.ReLU(inplace=True),
            )

        self.body = nn.Sequential(
            block(5, width, 2),
            block(width, 2 * width, 2),
            block(2 * width, 2 * width, 1, 2),
            block(2 * width, 2 * width, 1, 4),
        )
        self.head = nn.Conv2d(2 * width, NC, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        yy = torch.linspace(-1, 1, h, device=x.device).view(1, 1, h, 1).expand(n, 1, h, w)
        xx = torch.linspace(-1, 1, w, device=x.device).view(1, 1, 1, w).expand(n, 1, h, w)
        out = self.head(self.body(torch.cat([x, yy, xx], 1)))
        return F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)


def to_tensor(imgs: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.25


def train(
    imgs: np.ndarray,
    labs: np.ndarray,
    iterations: int,
    batch: int,
    seed: int,
    style_pool: np.ndarray | None = None,
    beta: float = 0.0,
) -> TinyFCN:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = TinyFCN()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: (1 - i / iterations) ** 0.9)
    model.train()
    for it in range(iterations):
        idx = rng.integers(len(imgs), size=batch)
        x = imgs[idx]
        if style_pool is not None:
            x = np.stack([fda(a, style_pool[rng.integers(len(style_pool))], beta) for a in x])
        y = labs[idx]
        if rng.random() < 0.5:
            x, y = x[:, :, ::-1], y[:, :, ::-1]
        logits = model(to_tensor(np.ascontiguousarray(x)))
        loss = F.cross_entropy(logits, torch.from_numpy(np.ascontiguousarray(y)).long(), ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if it % 100 == 0:
            log.info("  it %d loss %.3f", it, loss.item())
    return model


@torch.no_grad()
def evaluate(model: TinyFCN, imgs: np.ndarray, labs: np.ndarray) -> dict[str, object]:
    model.eval()
    conf = np.zeros((NC, NC), np.int64)
    for i in range(0, len(imgs), 16):
        pred = model(to_tensor(imgs[i : i + 16])).argmax(1).numpy()
        gt = labs[i : i + 16]
        m = gt != 255
        conf += np.bincount(NC * gt[m].astype(np.int64) + pred[m], minlength=NC * NC).reshape(NC, NC)
    inter = np.diag(conf).astype(float)
    union = conf.sum(0) + conf.sum(1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, np.nan)
    pred_share = conf.sum(0) / max(conf.sum(), 1)
    top = np.argsort(-pred_share)[:4]
    log.info("  predicted on val: %s", ", ".join(f"{CLASSES[k]} {pred_share[k]:.2f}" for k in top))
    off = conf / max(conf.sum(), 1)
    np.fill_diagonal(off, 0)
    worst = np.dstack(np.unravel_index(np.argsort(-off, axis=None)[:5], off.shape))[0]
    log.info(
        "  top confusions (gt->pred, share of pixels): %s",
        ", ".join(f"{CLASSES[a]}->{CLASSES[b]} {off[a, b]:.3f}" for a, b in worst),
    )
    return {
        "miou": float(np.nanmean(iou) * 100),
        "iou": {
            c: (None if np.isnan(v) else round(float(v) * 100, 1)) for c, v in zip(CLASSES, iou, strict=True)
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data", type=Path, help="an existing benchmark folder (default: generate one in a temp dir)"
    )
    ap.add_argument("--seed", type=int, default=2021)
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--n-source", type=int, default=400)
    ap.add_argument("--n-target-train", type=int, default=300)
    ap.add_argument("--n-target-val", type=int, default=100)
    ap.add_argument("--scale", type=float, default=1.0, help="probe resolution relative to the images")
    ap.add_argument("--iterations", type=int, default=600)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument(
        "--beta", type=float, default=0.05, help="FDA window fraction (probe resolution is small)"
    )
    ap.add_argument("--runs", default="source_only,source_fda,oracle")
    ap.add_argument("--train-seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data
        if root is None:
            root = Path(tmp) / "embedded"
            generate(
                root,
                args.seed,
                args.height,
                args.width,
                args.n_source,
                args.n_target_train,
                args.n_target_val,
            )
        summary = json.loads((root / "summary.json").read_text())
        src = load_split(root, "source", "all", args.scale)
        trg = load_split(root, "target", "train", args.scale)
        val = load_split(root, "target", "val", args.scale)

    results: dict[str, object] = {}
    for run in args.runs.split(","):
        t = time.time()
        log.info("training %s", run)
        if run == "source_only":
            model = train(*src, args.iterations, args.batch, args.train_seed)
        elif run == "source_fda":
            model = train(
                *src, args.iterations, args.batch, args.train_seed, style_pool=trg[0], beta=args.beta
            )
        elif run == "oracle":
            model = train(*trg, args.iterations, args.batch, args.train_seed)
        else:
            raise SystemExit(f"unknown run {run!r}")
        results[run] = evaluate(model, *val)
        log.info("%s: mIoU %.1f (%.0f s)", run, results[run]["miou"], time.time() - t)  # type: ignore[index]

    names = list(results)
    print(f"{'class':<14}" + "".join(f"{n:>12}" for n in names) + f"{'src freq':>10}{'tgt freq':>10}")
    sf = summary["splits"]["source/all"]["class_pixel_fraction"]
    tf = summary["splits"]["target/train"]["class_pixel_fraction"]
    for c in CLASSES:
        vals = [results[n]["iou"][c] for n in names]  # type: ignore[index]
        print(
            f"{c:<14}"
            + "".join(f"{'-' if v is None else v:>12}" for v in vals)
            + f"{sf[c]:>10.4f}{tf[c]:>10.4f}"
        )
    print(f"{'mIoU':<14}" + "".join(f"{results[n]['miou']:>12.1f}" for n in names))  # type: ignore[index]
    if args.json:
        args.json.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=2)
            + "\n"
        )


if __name__ == "__main__":
    main()
