"""Stage ``train_upst``: +UPST, self-training from the +TGAA model on its uncertainty-aware pseudo labels.

Round 1's pseudo labels are the ``pseudo_label`` stage's output; rounds 2..R (``upst.rounds``)
pseudo-label the target again with the current model (uplr/method/pseudo_pass.py) and self-train from
it. The labelled stream is the translated source set; the pseudo-labelled target is the second.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from uplr.config import Config
from uplr.data import configured
from uplr.data.pseudo_labeled import PseudoLabeled
from uplr.method.pseudo_pass import write_pseudo_labels
from uplr.train.loop import Trainer, TrainJob
from uplr.train.rowrun import train_row

log = logging.getLogger(__name__)


def build(cfg: Config, row: str, seed: int, args: dict[str, Any]) -> tuple[TrainJob, list[Path]]:
    src = configured.translated_source(cfg)
    pseudo = PseudoLabeled(configured.target_train(cfg), args["pseudo"])
    job = TrainJob(row, seed, cfg.upst.iterations, labeled=src, pseudo=pseudo, init_model=Path(args["init_model"]))
    inputs = [cfg.path(cfg.translate.out), cfg.path(cfg.data.target.root), Path(args["pseudo"]),
              Path(args["init_model"])]
    return job, inputs


def fit(cfg: Config, trainer: Trainer, job: TrainJob, args: dict[str, Any], mlrun, stage: str, seed: int,
        inputs: list[Path], out: Path, dist) -> Trainer:
    trainer.fit()
    return run_later_rounds(cfg, trainer, job, dist, mlrun, Path(out), trainer.resume_dir)


def run_later_rounds(cfg: Config, trainer: Trainer, job: TrainJob, dist, mlrun, out: Path,
                     resume_dir: Path | None) -> Trainer:
    """UPST rounds 2..R: pseudo-label the target with the current model, self-train again from it.

    Round 1's pseudo labels are the ``pseudo_label`` stage's output; later rounds' labels are written to
    ``<out>/later_rounds/round<r>`` (one DVC output holding one folder per round; empty for one round).
    """
    later = out / "later_rounds"
    later.mkdir(parents=True, exist_ok=True)
    for r in range(2, cfg.upst.rounds + 1):
        prev = out / f"later_rounds/round{r - 1}_model.pt"
        trainer.write_outputs(prev, None, {"row": "upst", "round": r - 1})
        pseudo_dir = later / f"round{r}"
        if not pseudo_dir.is_dir():
            trainer.model.eval()
            write_pseudo_labels(cfg, trainer.model, trainer.device, pseudo_dir)
        next_job = TrainJob(f"upst_round{r}", job.seed, cfg.upst.iterations, labeled=job.labeled,
                            pseudo=PseudoLabeled(configured.target_train(cfg), pseudo_dir), init_model=prev,
                            fingerprint_extra={**job.fingerprint_extra, "round": r})
        trainer = Trainer(cfg, next_job, dist, run=mlrun,
                          resume_dir=None if resume_dir is None else Path(resume_dir) / f"round{r}")
        trainer.fit()
        log.info("UPST round %d done", r)
    return trainer


def run(cfg: Config, row: str, seed: int, out: Path, resume_dir: Path | None, stage: str,
        args: dict[str, Any] | None = None) -> None:
    train_row(cfg, row, seed, out, resume_dir, stage, args or {}, build=build, fit=fit, entry=__name__)
