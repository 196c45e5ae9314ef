"""Stage ``train_upst``: +UPST, the +TGAA model continued with self-training on its pseudo labels.

The paper's +UPST row keeps AA, IT, SR and TGAA ticked, and BDL's self-training keeps its adversarial
term: the +TGAA model and its discriminators go on training for ``upst.iterations`` steps on the
translated source set drawn with TGAA's last weights (its last S_k), with the adversarial term (the
discriminators still updated), plus cross-entropy on the pseudo-labelled target train images. The
learning rate goes on from where the chain stopped (``upst.lr_schedule: continue``) unless ``restart``.
Round 1's pseudo labels are the ``pseudo_label`` stage's output; rounds 2..R (``upst.rounds``)
pseudo-label the target again with the current model (uplr/method/pseudo_pass.py) and go on from it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from uplr.config import Config
from uplr.data import configured
from uplr.data.labels import CLASSES_19
from uplr.data.pseudo_labeled import PseudoLabeled
from uplr.errors import UplrError
from uplr.method.pseudo_pass import write_pseudo_labels
from uplr.method.tgaa import weights_for_s_k
from uplr.train import checkpoint as ckpt
from uplr.train.loop import Trainer, TrainJob
from uplr.train.rowrun import continue_from, train_row

log = logging.getLogger(__name__)


def build(cfg: Config, row: str, seed: int, args: dict[str, Any]) -> tuple[TrainJob, list[Path]]:
    src = configured.translated_source(cfg)
    target = configured.target_train(cfg)
    pseudo = PseudoLabeled(target, args["pseudo"])
    job = TrainJob(row, seed, cfg.upst.iterations, labeled=src, target=target, adversarial=True, pseudo=pseudo)
    parent = Path(args["init_model"])
    continue_from(job, parent, cfg.upst.iterations, cfg.upst.lr_schedule)
    # the source stream keeps TGAA's last resampling classes (saved with the +TGAA model)
    s_k = ckpt.load_meta(parent).get("tgaa_S_k")
    if not s_k:
        raise UplrError(f"{parent}: the model has no TGAA classes (meta tgaa_S_k); +UPST continues the +TGAA "
                        "model: re-run its stage (dvc repro train_tgaa)")
    counts = configured.load_counts(args["class_stats"], len(src))
    job.labeled_weights = weights_for_s_k(counts, list(s_k), cfg.tgaa, cfg.resample)[0]  # under tgaa.weights
    job.fingerprint_extra["S_k"] = list(s_k)
    log.info("+UPST draws the source towards TGAA's last S_k = %s", [CLASSES_19[c] for c in s_k])
    inputs = [cfg.path(cfg.translate.out), cfg.path(cfg.data.target.root), Path(args["pseudo"]), parent,
              Path(args["class_stats"])]
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
                            labeled_weights=job.labeled_weights, target=job.target, adversarial=True,
                            pseudo=PseudoLabeled(configured.target_train(cfg), pseudo_dir),
                            fingerprint_extra={**job.fingerprint_extra, "round": r})
        continue_from(next_job, prev, cfg.upst.iterations, cfg.upst.lr_schedule)
        trainer = Trainer(cfg, next_job, dist, run=mlrun,
                          resume_dir=None if resume_dir is None else Path(resume_dir) / f"round{r}")
        trainer.fit()
        log.info("UPST round %d done", r)
    return trainer


def run(cfg: Config, row: str, seed: int, out: Path, resume_dir: Path | None, stage: str,
        args: dict[str, Any] | None = None) -> None:
    train_row(cfg, row, seed, out, resume_dir, stage, args or {}, build=build, fit=fit, entry=__name__)
