"""Scoring a model on a labelled target split: per-class IoU and the benchmark's mIoUs, logged to MLflow.

Predictions are upsampled to the label's native resolution; the confusion matrix is accumulated over
the whole split; per-class IoU and mIoU over 19 / 16 / 13 classes come from it (subsets from per-class
IoU, never by rescaling).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from uplr.config import Config
from uplr.data.labels import CLASSES_19, SUBSETS
from uplr.evaluate.inference import iter_probs
from uplr.evaluate.metrics import ConfusionMeter, summarize
from uplr.io import atomic_dir
from uplr.track.mlflow_run import stage_run


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


def evaluation_tags(cfg: Config, row: str, seed: int, device: torch.device,
                    checkpoint: str | None = None) -> dict[str, Any]:
    """Tags of an evaluation run; ``checkpoint`` names the snapshot (default: ``evaluate.checkpoint``)."""
    return {"kind": "evaluation", "row": row, "seed": seed, "benchmark": cfg.benchmark,
            "checkpoint": checkpoint or cfg.evaluate.checkpoint, "target": cfg.data.target.dataset,
            "city": cfg.data.target.city, "device": str(device)}


def result_metrics(result: dict[str, Any]) -> dict[str, float | None]:
    metrics = {f"iou/{k}": v for k, v in result["iou"].items()}
    metrics.update({f"miou/{k}": v for k, v in result["miou"].items()})
    metrics["pixel_accuracy"] = result["pixel_accuracy"]
    return metrics


def log_evaluation(cfg: Config, result: dict[str, Any], row: str, seed: int, stage: str, inputs: list[Path],
                   device: torch.device, checkpoint: str | None = None) -> None:
    """An MLflow evaluation run for a score computed elsewhere (e.g. TGAA's per-stage snapshots)."""
    with stage_run(cfg.tracking.experiment, stage, f"evaluate/{row}/seed{seed}", inputs,
                   evaluation_tags(cfg, row, seed, device, checkpoint), {"row": row, "seed": seed}) as mlrun:
        mlrun.log_metrics(result_metrics(result))
