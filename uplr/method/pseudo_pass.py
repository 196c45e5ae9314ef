"""The pseudo-label pass over a target set: two streaming passes (statistics, then assignment) and writing.

:func:`pseudo_label_pass` is the library function (any ``predict`` callable, any selector of
uplr/method/pseudo.py); :func:`write_pseudo_labels` runs it for a model on the config's target train
split, with the selector the config names (:func:`make_selector`). Memory does not grow with the
number of images: only per-class histograms are kept between the passes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from uplr.errors import UplrError
from uplr.io import atomic_dir
from uplr.method.pseudo import PixelStats, Selector, build_selector
from uplr.runtime import is_main

log = logging.getLogger(__name__)


def selector_params(cfg, method: str) -> dict[str, Any]:
    """The parameters of pseudo-label method ``method`` from the config's ``upst`` section."""
    u = cfg.upst
    return {"gmm": {"bins": u.bins, "rule": u.gmm_rule}, "threshold": {"threshold": u.threshold}, "bdl": {"cap": u.bdl_cap, "bins": u.bins},
            "cbst": {"portion": u.cbst_portion, "bins": u.bins}}.get(method, {})


def make_selector(cfg, method: str | None = None) -> Selector:
    method = method or cfg.upst.method
    return build_selector(method, **selector_params(cfg, method))


def write_pseudo_labels(cfg, model: torch.nn.Module, device: torch.device, out: Path) -> dict[str, Any]:
    """One pseudo-label round: the target train split through the configured selector into ``out``."""
    from uplr.data.configured import target_train
    from uplr.data.pseudo_labeled import pseudo_name
    from uplr.evaluate.inference import iter_probs

    ds = target_train(cfg)

    def predict():
        for _i, name, prob, _label in iter_probs(model, ds, device, cfg.evaluate.batch_size, cfg.train.amp,
                                                 desc="pseudo labels"):
            yield pseudo_name(name), prob

    return pseudo_label_pass(predict, make_selector(cfg), out, save_confidence=cfg.upst.save_confidence)


def _check_name(name: Any) -> PurePosixPath:
    if not isinstance(name, str) or not name:
        raise UplrError(f"pseudo_label_pass: image name must be a non-empty str, got {name!r}")
    path = PurePosixPath(name)
    if path.is_absolute() or any(part in ("..", ".", "") for part in name.split("/")) or "\\" in name:
        raise UplrError(f"pseudo_label_pass: image name {name!r} must be a relative path without '.', "
                        "'..', empty parts or backslashes (it becomes <out_dir>/<name>.png)")
    return path


def pseudo_label_pass(
    predict: Callable[[], Iterable[tuple[str, torch.Tensor]]],
    selector: Selector,
    out_dir: str | Path,
    save_confidence: bool = False,
) -> dict[str, Any]:
    """Write pseudo labels for a target set in two streaming passes; returns a JSON-safe summary.

    ``predict()`` returns a fresh iterable of ``(name, prob)`` with ``prob`` a C x H x W softmax map (any
    device); it is called twice and must yield the same images in the same order (checked by a running
    hash of the names). Pass 1 (skipped for selectors without statistics) accumulates
    :class:`PixelStats` (summed over ``torchrun`` ranks) and fits the selector; pass 2 writes
    ``<out_dir>/<name>.png`` (uint8, 255 = ignore; "/" in names makes subfolders) and, with
    ``save_confidence``, ``<name>_conf.npy`` (float16 max probability). The folder appears only when
    complete (atomic); on any error nothing is left.

    Under ``torchrun`` (process group initialised) pass 1 is collective: every rank must call this, each
    with its own shard in ``predict`` and its own ``out_dir``; the fit then uses the statistics of all
    shards, while the files and the returned pixel counts are the rank's own.
    """
    out_dir = Path(out_dir)
    stats: PixelStats | None = None
    first_hash = None
    if selector.needs_stats:
        digest = hashlib.sha256()
        for name, prob in tqdm(predict(), desc=f"pseudo labels ({selector.name}) 1/2: statistics",
                               unit="img", disable=not is_main()):
            _check_name(name)
            digest.update(name.encode() + b"\0")
            if not isinstance(prob, torch.Tensor) or prob.dim() != 3:
                raise UplrError(f"pseudo_label_pass: prob for {name!r} must be a C x H x W tensor, got "
                                f"{tuple(getattr(prob, 'shape', ()))}")
            if stats is None:
                stats = PixelStats(prob.shape[0], bins=selector.bins)
            stats.update(prob)
        if stats is None:
            raise UplrError("pseudo_label_pass: predict() yielded no images; check the target list")
        stats.all_reduce()
        selector.fit(stats)
        first_hash = digest.hexdigest()

    num_classes = stats.num_classes if stats is not None else None
    predicted = kept = None
    count = 0
    digest = hashlib.sha256()
    with atomic_dir(out_dir) as tmp:
        for name, prob in tqdm(predict(), desc=f"pseudo labels ({selector.name}) 2/2: writing",
                               unit="img", disable=not is_main()):
            rel = _check_name(name)
            digest.update(name.encode() + b"\0")
            if not isinstance(prob, torch.Tensor) or prob.dim() != 3:
                raise UplrError(f"pseudo_label_pass: prob for {name!r} must be a C x H x W tensor, got "
                                f"{tuple(getattr(prob, 'shape', ()))}")
            if num_classes is None:
                num_classes = prob.shape[0]
            if prob.shape[0] != num_classes:
                raise UplrError(f"pseudo_label_pass: prob for {name!r} has {prob.shape[0]} classes, "
                                f"expected {num_classes}")
            if predicted is None:
                predicted = torch.zeros(num_classes, dtype=torch.int64, device=prob.device)
                kept = torch.zeros_like(predicted)
            label = selector.assign(prob)
            pred = prob.argmax(dim=0)
            predicted += torch.bincount(pred.reshape(-1), minlength=num_classes).to(predicted.device)
            kept += torch.bincount(label.reshape(-1).long(), minlength=256)[:num_classes].to(kept.device)
            target = tmp / f"{rel}.png"
            if target.exists():
                raise UplrError(f"pseudo_label_pass: image name {name!r} was yielded twice")
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_png(target, label.cpu().numpy())
            if save_confidence:
                conf = prob.max(dim=0).values.to(torch.float16).cpu().numpy()
                np.save(tmp / f"{rel}_conf.npy", conf)
            count += 1
        if count == 0:
            raise UplrError("pseudo_label_pass: predict() yielded no images; check the target list")
        if first_hash is not None and digest.hexdigest() != first_hash:
            raise UplrError("pseudo_label_pass: predict() yielded different images (names or order) in the "
                            "two passes; it must be deterministic and return a fresh iterable each call")
    assert predicted is not None and kept is not None
    pred_np, kept_np = predicted.cpu().numpy(), kept.cpu().numpy()
    share = [float(k / p) if p > 0 else None for k, p in zip(kept_np, pred_np, strict=True)]
    summary = {"method": selector.name, "num_images": count, "num_classes": int(num_classes),
               "predicted_pixels": [int(v) for v in pred_np], "kept_pixels": [int(v) for v in kept_np],
               "kept_share": share, "kept_share_all": float(kept_np.sum() / max(pred_np.sum(), 1)),
               "selector": selector.summary()}
    log.info("pseudo labels (%s): %d images, %.1f%% of pixels kept -> %s", selector.name, count,
             100 * summary["kept_share_all"], out_dir)
    return summary


def _write_png(path: Path, label: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(label, dtype=np.uint8), mode="L").save(path, format="PNG")


def _write_png(path: Path, label: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(label, dtype=np.uint8), mode="L").save(path, format="PNG")
