"""Stage ``evaluate``: score a trained model on the target validation split.

Predictions are upsampled to the label's native resolution; the confusion matrix is accumulated over
the whole split; per-class IoU and mIoU over 19 / 16 / 13 classes come from it (subsets from per-class
IoU, never by rescaling). Writes ``metrics.json`` (a DVC metric), optional trainId PNG predictions
(scorable again with ``uplr evaluate --pred-dir``) and logs everything to an MLflow evaluation run,
which is what the tables are built from.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from uplr.config import Config
from uplr.data.labels import CLASSES_19, SUBSETS
from uplr.evaluate.inference import iter_probs, load_model
from uplr.evaluate.metrics import ConfusionMeter, summarize
from uplr.io import atomic_dir, sweep_stale, write_json
from uplr.runtime import init_distributed
from uplr.stages import common
from uplr.track.mlflow_run import stage_run

log = logging.getLogger(__name__)


def subsets_for(cfg: Config) -> dict[str, tuple[int, ...]]:
    """Which mIoUs a benchmark reports: 19/16/13 for Cityscapes targets, the 13 NTHU classes for Cross-City."""
    if cfg.data.target.dataset == "nthu":
        return {"nthu13": SUBSETS["nthu13"]}
    return {k: SUBSETS[k] for k in ("19", "16", "13")}


def score_model(cfg: Config, model: torch.nn.Module, ds, device: torch.device, desc: str = "evaluate",
                predictions: Path | None = None) -> dict[str, Any]:
    """Per-class IoU and mIoUs of ``model`` on ``ds`` (labels at native resolution)."""
    was_training = model.training
    model.eval()
    meter = ConfusionMeter(cfg.model.num_classes, device)
    with atomic_dir(predictions) if predictions is not None else contextlib.nullcontext() as pred_dir:
        for _i, name, prob, label in iter_probs(model, ds, device, cfg.evaluate.batch_size, cfg.train.amp, desc=desc):
            pred = prob.argmax(0)
            meter.update(pred, label)
            if pred_dir is not None:
                target = Path(pred_dir) / Path(name).with_suffix(".png")
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pred.cpu().numpy().astype(np.uint8), mode="L").save(target)
    meter.all_reduce()
    model.train(was_training)
    result = summarize(meter.value, CLASSES_19, subsets_for(cfg))
    result["n_images"] = len(ds)
    return result


def evaluation_tags(cfg: Config, row: str, seed: int, device: torch.device) -> dict[str, Any]:
    return {"kind": "evaluation", "row": row, "seed": seed, "benchmark": cfg.benchmark,
            "checkpoint": cfg.evaluate.checkpoint, "target": cfg.data.target.dataset,
            "city": cfg.data.target.city, "device": str(device)}


def result_metrics(result: dict[str, Any]) -> dict[str, float | None]:
    metrics = {f"iou/{k}": v for k, v in result["iou"].items()}
    metrics.update({f"miou/{k}": v for k, v in result["miou"].items()})
    metrics["pixel_accuracy"] = result["pixel_accuracy"]
    return metrics


def log_evaluation(cfg: Config, result: dict[str, Any], row: str, seed: int, stage: str, inputs: list[Path],
                   device: torch.device) -> None:
    """An MLflow evaluation run for a score computed elsewhere (e.g. TGAA's per-stage snapshots)."""
    with stage_run(cfg.tracking.experiment, stage, f"evaluate/{row}/seed{seed}", inputs,
                   evaluation_tags(cfg, row, seed, device), {"row": row, "seed": seed}) as mlrun:
        mlrun.log_metrics(result_metrics(result))


def run(cfg: Config, model_path: Path, row: str, seed: int, out: Path, stage: str,
        predictions: Path | None = None) -> dict:
    sweep_stale(out, *([predictions] if predictions is not None else []))  # what a killed run left
    dist = init_distributed(cfg.train.device)
    ds = common.target_val(cfg)
    inputs = [Path(model_path), cfg.path(cfg.data.target.root)]
    with stage_run(cfg.tracking.experiment, stage, f"evaluate/{row}/seed{seed}", inputs,
                   evaluation_tags(cfg, row, seed, dist.device),
                   {"row": row, "seed": seed, "model": str(model_path), "val_split": cfg.data.target.val_split}) as mlrun:
        model = load_model(cfg, model_path, dist.device)
        save = predictions if cfg.evaluate.save_predictions else None
        result = score_model(cfg, model, ds, dist.device, f"evaluate {row}", save)
        result.update({"row": row, "seed": seed, "checkpoint": cfg.evaluate.checkpoint})
        write_json(out, result)
        mlrun.log_metrics(result_metrics(result))
        mlrun.log_artifact(out)
    log.info("%s seed %d: mIoU %s", row, seed,
             {k: None if v is None else round(100 * v, 2) for k, v in result["miou"].items()})
    return result
