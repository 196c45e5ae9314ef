"""What every training stage does around its row's job: MLflow run, fingerprint, trainer, outputs.

Each row of the experiment grid (uplr/experiments.py) has an entry module under uplr/stages/
(``train`` for the plain rows, ``train_sr``, ``train_tgaa``, ``train_upst``) that builds its
:class:`~uplr.train.loop.TrainJob` and, where the row trains in parts (TGAA's stages), its own fit;
:func:`train_row` does the rest the same way for all of them:

* the MLflow params are exactly the config keys the row reads (the grid), plus seed and inputs;
* the resume fingerprint holds those values, DVC's hash of every input and the hash of the code the
  stage runs (uplr/codedeps.py): a checkpoint of other settings, inputs or code is never resumed;
* the outputs: ``model.pt`` (the last snapshot: the one reported) and ``train_log.csv``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from uplr import experiments as X
from uplr.codedeps import code_hash
from uplr.config import Config
from uplr.data import configured
from uplr.errors import UplrError
from uplr.io import sweep_stale
from uplr.reads import values
from uplr.runtime import Dist, init_distributed
from uplr.track import lineage
from uplr.track.mlflow_run import stage_run
from uplr.train import checkpoint as ckpt
from uplr.train.loop import Trainer, TrainJob, resume_run_id

log = logging.getLogger(__name__)

Build = Callable[[Config, str, int, dict[str, Any]], tuple[TrainJob, list[Path]]]
Fit = Callable[..., None]


def plain_job(cfg: Config, row_id: str, seed: int, args: dict[str, Any]) -> tuple[TrainJob, list[Path]]:
    """The job of a row without resampling or pseudo labels (its labelled stream, AA or not)."""
    row = X.row(row_id)
    it = cfg.train.iterations
    if row.labeled == "target":
        tgt = configured.target_train(cfg)
        if not tgt.has_labels:
            raise UplrError(f"{cfg.data.target.root}: the target train split has no labels: no {row_id} row can "
                            "be trained on this benchmark")
        return TrainJob(row_id, seed, it, labeled=tgt), [cfg.path(cfg.data.target.root)]
    if row.labeled == "source":
        labeled, inputs = configured.source_train(cfg), [cfg.path(cfg.data.source.root)]
    else:
        labeled, inputs = configured.translated_source(cfg), [cfg.path(cfg.translate.out)]
    if not row.adversarial:
        return TrainJob(row_id, seed, it, labeled=labeled), inputs
    target = configured.target_train(cfg)
    return (TrainJob(row_id, seed, it, labeled=labeled, target=target, adversarial=True),
            inputs + [cfg.path(cfg.data.target.root)])


def file_md5(path: Path) -> str:
    import hashlib

    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_run_by_output(experiment: str, md5: str) -> str:
    """The newest finished training run whose model file has this md5 ("" when MLflow has none)."""
    import mlflow

    from uplr.track.mlflow_run import tracking_uri

    client = mlflow.MlflowClient(tracking_uri=tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return ""
    runs = client.search_runs([exp.experiment_id], f"tags.`uplr.output.md5` = '{md5}' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].info.run_id if runs else ""


def continue_from(job: TrainJob, parent: Path, iterations: int, lr_schedule: str) -> None:
    """Make ``job`` continue the model (and discriminators) in ``parent`` for ``iterations`` more steps.

    ``lr_schedule``: ``continue`` = the chain's poly schedule goes on from the parent's last step (the
    fine-tuning rate the chain has reached), ``restart`` = from ``train.lr`` again.
    """
    if lr_schedule not in ("continue", "restart"):
        raise UplrError(f"lr_schedule must be 'continue' or 'restart', got {lr_schedule!r}")
    job.init_model = Path(parent)
    job.iterations = iterations
    job.step_offset = int(ckpt.load_meta(parent).get("chain_step", 0))
    job.continue_schedule = lr_schedule == "continue"
    job.fingerprint_extra.update({"step_offset": job.step_offset, "lr_schedule": lr_schedule})


def train_row(cfg: Config, row_id: str, seed: int, out: Path, resume_dir: Path | None, stage: str,
              args: dict[str, Any], build: Build = plain_job, fit: Fit | None = None,
              entry: str | None = None) -> None:
    """Train ``row_id`` for ``seed``: ``build`` makes the job, ``fit`` (default: ``trainer.fit()``) trains.

    ``fit(cfg, trainer, job, args, mlrun, stage, seed, inputs, out, dist)`` may return another trainer
    (UPST's later rounds); its outputs are the ones written.
    """
    row = X.row(row_id)
    dist: Dist = init_distributed(cfg.train.device, cfg.train.threads)
    job, inputs = build(cfg, row_id, seed, args)
    if job.init_model is None and cfg.model.init != "scratch":
        inputs = [*inputs, cfg.path(cfg.model.init)]  # the init weights' hash enters the lineage too
    params = values(cfg, row.reads)
    # a resumable checkpoint (a persistent DVC output) belongs to these settings, inputs and code only
    job.fingerprint_extra.update({
        "params": params,
        "inputs": lineage.input_signature(inputs, lineage.repo_root()),
        "code": code_hash(entry or row.entry),
    })
    mlflow_params = {**params, "seed": seed, "row": row_id, **{f"input.{k}": str(v) for k, v in args.items()}}
    tags = {"kind": "train", "row": row_id, "seed": seed, "benchmark": cfg.benchmark, "device": str(dist.device),
            # the city only where the row reads the target (Cross-City's source-only model has none)
            "city": cfg.data.target.city if "data.target.city" in row.reads else ""}
    if job.init_model is not None:  # a continued row: its parent's run, as lineage (DVC has its hash)
        md5 = file_md5(job.init_model)
        tags.update({"parent.row": ckpt.load_meta(job.init_model).get("row", ""), "parent.md5": md5,
                     "parent.run_id": find_run_by_output(cfg.tracking.experiment, md5)})
    out = Path(out)
    sweep_stale(out / "model.pt", out / "train_log.csv", out / "tgaa_stages.json")  # what a killed run left
    # a resumed stage reopens the MLflow run of its checkpoint: one run per stage run
    with stage_run(cfg.tracking.experiment, stage, f"train/{row_id}/seed{seed}", inputs, tags, mlflow_params,
                   resume_run_id=resume_run_id(cfg, job, resume_dir)) as mlrun:
        trainer = Trainer(cfg, job, dist, run=mlrun, resume_dir=resume_dir)
        if fit is None:
            trainer.fit()
        else:
            trainer = fit(cfg, trainer, job, args, mlrun, stage, seed, inputs, out, dist) or trainer
        meta = {"row": row_id, "seed": seed, "benchmark": cfg.benchmark, "trunk": cfg.model.trunk,
                **trainer.extra.get("meta", {})}
        trainer.write_outputs(out / "model.pt", out / "train_log.csv", meta)
        mlrun.log_artifact(out / "train_log.csv")
        if dist.rank == 0:  # how a row continued from this model finds this run (the file holds no run id)
            mlrun.set_tags({"uplr.output.md5": file_md5(out / "model.pt")})
    log.info("trained %s seed %d -> %s", row_id, seed, out / "model.pt")
