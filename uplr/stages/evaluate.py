"""Stage ``evaluate``: score a trained model on the target validation split (uplr/evaluate/scoring.py).

Writes ``metrics.json`` (a DVC metric), optional trainId PNG predictions
(scorable again with ``uplr evaluate --pred-dir``) and logs everything to an MLflow evaluation run,
which is what the tables are built from.
"""

from __future__ import annotations

import logging
from pathlib import Path

from uplr.config import Config
from uplr.data import configured
from uplr.evaluate.inference import load_model
from uplr.evaluate.scoring import evaluation_tags, result_metrics, score_model
from uplr.io import sweep_stale, write_json
from uplr.runtime import init_distributed
from uplr.track.mlflow_run import stage_run

log = logging.getLogger(__name__)


def run(cfg: Config, model_path: Path, row: str, seed: int, out: Path, stage: str,
        predictions: Path | None = None) -> dict:
    sweep_stale(out, *([predictions] if predictions is not None else []))  # what a killed run left
    dist = init_distributed(cfg.train.device, cfg.train.threads)
    ds = configured.target_val(cfg)
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
