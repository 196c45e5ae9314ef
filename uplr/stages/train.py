"""Stage ``train``: train one configuration (a row of a table) for one seed.

Outputs (under ``--out``): ``model.pt`` (the last snapshot's weights: the one we report),
``train_log.csv`` (the training curves, a DVC plot) and, under ``--resume-dir``, the resumable
checkpoint (a persistent, uncached DVC output so a killed ``dvc repro`` picks up where it stopped).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from uplr.config import Config, flatten, to_dict
from uplr.errors import UplrError
from uplr.runtime import init_distributed
from uplr.stages import common
from uplr.track.mlflow_run import stage_run
from uplr.train.loop import Trainer, TrainJob

log = logging.getLogger(__name__)


def _source_only(cfg: Config, seed: int, args) -> tuple[TrainJob, list[Path]]:
    src = common.source_train(cfg)
    return TrainJob("source_only", seed, cfg.train.iterations, labeled=src), common.data_inputs(cfg)


def _oracle(cfg: Config, seed: int, args) -> tuple[TrainJob, list[Path]]:
    """Target-supervised upper bound: trained on target train labels (not a UDA method)."""
    tgt = common.target_train(cfg)
    if not getattr(tgt, "has_labels", True):
        raise UplrError(f"{cfg.data.target.root}: the target train split has no labels, so no oracle can be trained")
    return TrainJob("oracle", seed, cfg.train.iterations, labeled=tgt), [cfg.path(cfg.data.target.root)]


ROWS: dict[str, Callable] = {"source_only": _source_only, "oracle": _oracle}

# the sections of the config each row reads (logged as MLflow params)
ROW_SECTIONS = {"source_only": ["data", "model", "train"], "oracle": ["data", "model", "train"]}


def run(cfg: Config, row: str, seed: int, out: Path, resume_dir: Path | None, stage: str) -> None:
    if row not in ROWS:
        raise UplrError(f"unknown row {row!r}; valid rows are {', '.join(ROWS)}")
    dist = init_distributed(cfg.train.device)
    job, inputs = ROWS[row](cfg, seed, None)
    sections = ROW_SECTIONS.get(row, ["data", "model", "train"])
    params = flatten({s: to_dict(getattr(cfg, s)) for s in sections})
    params.update({"seed": seed, "row": row})
    tags = {"kind": "train", "row": row, "seed": seed, "benchmark": cfg.benchmark, "device": str(dist.device)}
    with stage_run(cfg.tracking.experiment, stage, f"train/{row}/seed{seed}", inputs, tags, params) as mlrun:
        trainer = Trainer(cfg, job, dist, run=mlrun, resume_dir=resume_dir)
        trainer.fit()
        out = Path(out)
        trainer.write_outputs(out / "model.pt", out / "train_log.csv",
                              {"row": row, "seed": seed, "benchmark": cfg.benchmark, "trunk": cfg.model.trunk})
        mlrun.log_artifact(out / "train_log.csv")
    log.info("trained %s seed %d -> %s", row, seed, out / "model.pt")
