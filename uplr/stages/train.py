"""Stage ``train``: train one configuration (a row of Table 3, or the oracle) for one seed.

Rows, each adding one component to the previous (Table 3's order):

- ``source_only``: source labels only;
- ``aa``: + output-space adversarial adaptation on unlabelled target images;
- ``it``: + the source set translated to the target style (``translate`` stage);
- ``sr``: + soft-balance resampling of source images over all classes;
- ``tgaa``: + resampling towards the top-k uncertain target classes, re-ranked with the current model
  at the start of each of t stages (stage 1 is ranked by the ``sr`` model); the budget is the same as
  the other rows, split into t equal stages; each stage's snapshot is evaluated (Figure 6);
- ``upst``: self-training from the ``tgaa`` model on its uncertainty-aware pseudo labels (+ source);
- ``oracle``: target labels (the target-supervised upper bound; not a UDA method).

Outputs (under ``--out``): ``model.pt`` (the last snapshot's weights: the one reported),
``train_log.csv`` (curves, a DVC plot); under ``--resume-dir`` the resumable checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from uplr.config import Config, flatten, to_dict
from uplr.data import configured
from uplr.errors import UplrError
from uplr.io import sweep_stale, write_json
from uplr.runtime import init_distributed
from uplr.track import lineage
from uplr.track.mlflow_run import stage_run
from uplr.train.loop import Trainer, TrainJob

log = logging.getLogger(__name__)

ROWS = ("source_only", "aa", "it", "sr", "tgaa", "upst", "oracle")
# the sections of the config each row reads (logged as MLflow params; dvc.yaml lists the same)
ROW_SECTIONS = {
    "source_only": ["data", "model", "train"],
    "oracle": ["data", "model", "train"],
    "aa": ["data", "model", "train", "adversarial"],
    "it": ["data", "model", "train", "adversarial", "translate"],
    "sr": ["data", "model", "train", "adversarial", "translate", "resample"],
    "tgaa": ["data", "model", "train", "adversarial", "translate", "resample", "tgaa"],
    "upst": ["data", "model", "train", "translate", "upst"],
}


def _sr_weights(cfg: Config, counts_path: Path, n: int, classes=None) -> tuple[np.ndarray, dict[str, Any]]:
    from uplr.data.configured import load_counts
    from uplr.method.resampling import soft_balance_weights

    r = cfg.resample
    w = soft_balance_weights(load_counts(counts_path, n), r.lam, r.alpha, r.mu, classes, r.mu_quantile)
    return w.p_hat, {"mu": w.mu, "alpha": w.alpha, "p_i_nonzero": int((w.p_i > 0).sum())}


def build_job(cfg: Config, row: str, seed: int, args: dict[str, Any]) -> tuple[TrainJob, list[Path]]:
    from uplr.data.configured import translated_root, translated_source

    it = cfg.train.iterations
    if row == "source_only":
        return TrainJob(row, seed, it, labeled=configured.source_train(cfg)), configured.data_inputs(cfg)[:1]
    if row == "oracle":
        tgt = configured.target_train(cfg)
        if not tgt.has_labels:
            raise UplrError(f"{cfg.data.target.root}: the target train split has no labels: no oracle can be trained")
        return TrainJob(row, seed, it, labeled=tgt), [cfg.path(cfg.data.target.root)]
    target = configured.target_train(cfg)
    inputs = configured.data_inputs(cfg)
    if row == "aa":
        return TrainJob(row, seed, it, labeled=configured.source_train(cfg), target=target, adversarial=True), inputs
    src = translated_source(cfg)
    inputs = [translated_root(cfg), cfg.path(cfg.data.target.root)]
    if row == "it":
        return TrainJob(row, seed, it, labeled=src, target=target, adversarial=True), inputs
    if row == "sr":
        w, info = _sr_weights(cfg, args["class_stats"], len(src))
        return (TrainJob(row, seed, it, labeled=src, labeled_weights=w, target=target, adversarial=True,
                         fingerprint_extra=info), inputs + [Path(args["class_stats"])])
    if row == "tgaa":
        from uplr.config import check_tgaa
        from uplr.data.configured import load_counts

        check_tgaa(cfg, load_counts(args["class_stats"], len(src)), str(args["class_stats"]))
        # weights are set per stage by run_tgaa; the fingerprint covers what decides them
        job = TrainJob(row, seed, it, labeled=src, target=target, adversarial=True,
                       fingerprint_extra={"tgaa": to_dict(cfg.tgaa), "resample": to_dict(cfg.resample),
                                          "rank_model": str(args["rank_model"])})
        return job, inputs + [Path(args["class_stats"]), Path(args["rank_model"])]
    if row == "upst":
        from uplr.data.pseudo_labeled import PseudoLabeled

        pseudo = PseudoLabeled(target, args["pseudo"])
        job = TrainJob(row, seed, cfg.upst.iterations, labeled=src, pseudo=pseudo, init_model=Path(args["init_model"]))
        return job, inputs + [Path(args["pseudo"]), Path(args["init_model"])]
    raise UplrError(f"unknown row {row!r}; valid rows are {', '.join(ROWS)}")


def _rank_classes(cfg: Config, model, dist) -> tuple[list[int], np.ndarray]:
    """S_k: the k classes with the highest class-level entropy on the target train split."""
    from uplr.evaluate.inference import iter_probs
    from uplr.method.uncertainty import ClassEntropyMeter, top_k_uncertain

    was = model.training
    model.eval()
    meter = ClassEntropyMeter(cfg.model.num_classes)
    for _i, _n, prob, _l in iter_probs(model, configured.target_train(cfg), dist.device, cfg.evaluate.batch_size,
                                       cfg.train.amp, desc="class entropy"):
        meter.update(prob)
    meter.all_reduce()
    model.train(was)
    ent = meter.value
    return top_k_uncertain(ent, cfg.tgaa.k, nan_policy=cfg.tgaa.nan_policy), ent


def run_tgaa(cfg: Config, trainer: Trainer, job: TrainJob, args: dict[str, Any], mlrun, stage: str,
             seed: int, inputs: list[Path]) -> list[dict[str, Any]]:
    """t stages: rank S_k with the current model, resample towards S_k, train a stage, evaluate it."""
    from uplr.data.labels import CLASSES_19
    from uplr.evaluate.inference import load_model
    from uplr.evaluate.scoring import log_evaluation, score_model

    t = cfg.tgaa.stages
    bounds = [round(job.iterations * (s + 1) / t) for s in range(t)]
    val = configured.target_val(cfg)
    history = trainer.extra.setdefault("tgaa", [])
    for s in range(1, t + 1):
        if s <= len(history) and "iou" in history[s - 1]:
            continue  # this stage was finished and evaluated before a resume
        if s > len(history):  # rank at the start of the stage (stage 1: with the SR model)
            ranker = load_model(cfg, args["rank_model"], trainer.device) if s == 1 else trainer.model
            s_k, ent = _rank_classes(cfg, ranker, trainer.dist)
            w, info = _sr_weights(cfg, args["class_stats"], len(job.labeled), classes=s_k)
            history.append({"stage": s, "S_k": s_k, "S_k_names": [CLASSES_19[c] for c in s_k],
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
        log_evaluation(cfg, result, f"tgaa@S{s}", seed, stage, inputs, trainer.device)
        trainer.save_checkpoint()
    return history


def run_later_rounds(cfg: Config, trainer: Trainer, job: TrainJob, dist, mlrun, out: Path,
                     resume_dir: Path | None) -> Trainer:
    """UPST rounds 2..R: pseudo-label the target with the current model, self-train again from it.

    Round 1's pseudo labels are the ``pseudo_label`` stage's output; later rounds' labels are written to
    ``<out>/later_rounds/round<r>`` (one DVC output holding one folder per round; empty for one round).
    """
    from uplr.data.pseudo_labeled import PseudoLabeled
    from uplr.method.pseudo_pass import write_pseudo_labels

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
    if row not in ROWS:
        raise UplrError(f"unknown row {row!r}; valid rows are {', '.join(ROWS)}")
    args = args or {}
    dist = init_distributed(cfg.train.device)
    job, inputs = build_job(cfg, row, seed, args)
    if job.init_model is None and cfg.model.init != "scratch":
        inputs = [*inputs, cfg.path(cfg.model.init)]  # the init weights' hash enters the lineage too
    # a resumable checkpoint (a persistent DVC output) belongs to these inputs only: when an upstream
    # stage re-ran (new data, new init model, new pseudo labels) the run starts over instead of resuming
    job.fingerprint_extra["inputs"] = lineage.input_signature(inputs, lineage.repo_root())
    params = flatten({s: to_dict(getattr(cfg, s)) for s in ROW_SECTIONS[row]})
    params.update({"seed": seed, "row": row, **{f"input.{k}": str(v) for k, v in args.items()}})
    tags = {"kind": "train", "row": row, "seed": seed, "benchmark": cfg.benchmark, "device": str(dist.device),
            "city": cfg.data.target.city}
    out = Path(out)
    sweep_stale(out / "model.pt", out / "train_log.csv", out / "tgaa_stages.json")  # what a killed run left
    with stage_run(cfg.tracking.experiment, stage, f"train/{row}/seed{seed}", inputs, tags, params) as mlrun:
        trainer = Trainer(cfg, job, dist, run=mlrun, resume_dir=resume_dir)
        if row == "tgaa":
            history = run_tgaa(cfg, trainer, job, args, mlrun, stage, seed, inputs)
            if dist.rank == 0:
                write_json(out / "tgaa_stages.json", [{k: v for k, v in h.items() if k != "weights"} for h in history])
        else:
            trainer.fit()
        if row == "upst":
            trainer = run_later_rounds(cfg, trainer, job, dist, mlrun, out, resume_dir)
        meta = {"row": row, "seed": seed, "benchmark": cfg.benchmark, "trunk": cfg.model.trunk}
        trainer.write_outputs(out / "model.pt", out / "train_log.csv", meta)
        mlrun.log_artifact(out / "train_log.csv")
    log.info("trained %s seed %d -> %s", row, seed, out / "model.pt")
