"""Stage ``train_tgaa``: +TGAA, the +SR model continued towards the top-k uncertain target classes S_k.

The paper's chain (Table 3 keeps AA, IT and SR ticked on this row; "we progressively enhance the
feature alignment model"): the +SR model and its discriminators go on training for ``tgaa.iterations``
steps, split into ``tgaa.stages`` stages. At the start of each stage S_k is ranked on the target train
split with the model being trained (stage 1: the +SR model itself), the source images are drawn with
the soft-balance weights towards S_k, and the stage's snapshot is scored on the target val split (an
MLflow evaluation run ``tgaa@S<k>``: Figure 6). ``tgaa.init: scratch`` is the variant that trains from
``model.init`` for ``train.iterations`` instead (the +SR model then only ranks stage 1).
``tgaa_stages.json`` records S_k, the class entropies and the scores per stage.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from uplr.config import Config, check_tgaa
from uplr.data import configured
from uplr.data.labels import CLASSES_19
from uplr.evaluate.inference import iter_probs, load_model
from uplr.evaluate.scoring import log_evaluation, score_model, subsets_for
from uplr.io import write_json
from uplr.method.tgaa import tgaa_weights, weights_for_s_k
from uplr.method.uncertainty import ClassEntropyMeter
from uplr.train.loop import Trainer, TrainJob
from uplr.train.rowrun import continue_from, plain_job, train_row

log = logging.getLogger(__name__)


def build(cfg: Config, row: str, seed: int, args: dict[str, Any]) -> tuple[TrainJob, list[Path]]:
    job, inputs = plain_job(cfg, row, seed, args)
    check_tgaa(cfg, configured.load_counts(args["class_stats"], len(job.labeled)), str(args["class_stats"]))
    parent = Path(args["init_model"])
    if cfg.tgaa.init == "sr":
        continue_from(job, parent, cfg.tgaa.iterations, cfg.tgaa.lr_schedule)
    # the weights are set per stage by fit(); the fingerprint covers what decides them (params: tgaa, resample)
    return job, inputs + [Path(args["class_stats"]), parent]


def rank_classes(cfg: Config, model, dist) -> np.ndarray:
    """I^c: the class-level entropy on the target train split (NaN: never predicted); S_k: tgaa_weights."""
    was = model.training
    model.eval()
    meter = ClassEntropyMeter(cfg.model.num_classes)
    for _i, _n, prob, _l in iter_probs(model, configured.target_train(cfg), dist.device, cfg.evaluate.batch_size,
                                       cfg.train.amp, desc="class entropy"):
        meter.update(prob)
    meter.all_reduce()
    model.train(was)
    ent = meter.value
    return ent


def sk_weights(cfg: Config, counts: np.ndarray, s_k: list[int]) -> np.ndarray:
    """p̂_i of the source images for the resampling classes S_k (``tgaa.weights``: S_k boosted or alone)."""
    return weights_for_s_k(counts, s_k, cfg.tgaa, cfg.resample)[0]


def fit(cfg: Config, trainer: Trainer, job: TrainJob, args: dict[str, Any], mlrun, stage: str, seed: int,
        inputs: list[Path], out: Path, dist) -> None:
    """t stages: rank S_k with the current model, resample towards S_k, train a stage, evaluate it."""
    t = cfg.tgaa.stages
    bounds = [round(job.iterations * (s + 1) / t) for s in range(t)]
    val = configured.target_val(cfg)
    counts = configured.load_counts(args["class_stats"], len(job.labeled))
    evaluated = sorted(set().union(*subsets_for(cfg).values()))  # S_k candidates: evaluated, in the source
    history = trainer.extra.setdefault("tgaa", [])
    for s in range(1, t + 1):
        if s <= len(history) and "iou" in history[s - 1]:
            continue  # this stage was finished and evaluated before a resume
        if s > len(history):  # rank at the start of the stage with the model being trained
            scratch = s == 1 and job.init_model is None  # variant: the +SR model ranks stage 1
            ranker = load_model(cfg, args["init_model"], trainer.device) if scratch else trainer.model
            ent = rank_classes(cfg, ranker, trainer.dist)
            w, s_k, info = tgaa_weights(counts, ent, cfg.tgaa, cfg.resample, evaluated)
            history.append({"stage": s, "S_k_names": [CLASSES_19[c] for c in s_k],
                            "class_entropy": [None if np.isnan(v) else float(v) for v in ent],
                            "weights": w.tolist(), **info})
            mlrun.log_metrics({f"tgaa/entropy/{CLASSES_19[c]}": v for c, v in enumerate(ent) if not np.isnan(v)},
                              step=s)
            mlrun.set_tags({f"uplr.tgaa.S{s}": ",".join(CLASSES_19[c] for c in s_k)})
            log.info("TGAA stage S%d: S_k = %s", s, [CLASSES_19[c] for c in s_k])
        job.labeled_weights = np.asarray(history[s - 1]["weights"])
        trainer.fit(stop_at=bounds[s - 1])
        result = score_model(cfg, trainer.model, val, trainer.device, f"evaluate tgaa@S{s}")
        history[s - 1]["iou"] = result["iou"]
        history[s - 1]["miou"] = result["miou"]
        log_evaluation(cfg, result, f"tgaa@S{s}", seed, stage, inputs, trainer.device, checkpoint=f"stage S{s}")
        trainer.save_checkpoint()
    trainer.extra["meta"] = {"tgaa_S_k": history[-1]["S_k"]}  # +UPST draws the source with the last S_k
    if dist.rank == 0:
        write_json(Path(out) / "tgaa_stages.json", [{k: v for k, v in h.items() if k != "weights"} for h in history])


def run(cfg: Config, row: str, seed: int, out: Path, resume_dir: Path | None, stage: str,
        args: dict[str, Any] | None = None) -> None:
    train_row(cfg, row, seed, out, resume_dir, stage, args or {}, build=build, fit=fit, entry=__name__)

