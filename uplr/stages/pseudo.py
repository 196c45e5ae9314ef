"""Stages ``pseudo_label`` and ``pseudo_quality`` (UPST).

``pseudo_label``: the model's softmax maps on the target train split (at training resolution) go
through a selector — UPLR's per-class GMM on normalised entropy by default, or a baseline — in two
streaming passes (statistics, then assignment), so memory does not grow with the number of images.
Output: one folder of uint8 PNGs per round (a DVC output).

``pseudo_quality``: where the target has ground truth (the embedded benchmark), the precision of the
kept pixels and their coverage per class, for GMM and each baseline, from the same model; logged to
MLflow (the tables draw the plot from there) and written as a JSON metric.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from uplr.config import Config
from uplr.data import configured
from uplr.data.labels import CLASSES_19
from uplr.evaluate.inference import iter_probs, load_model
from uplr.evaluate.pseudo_quality import quality_report
from uplr.io import sweep_stale, write_json
from uplr.method.pseudo import PixelStats
from uplr.method.pseudo_pass import make_selector, selector_params, write_pseudo_labels
from uplr.runtime import init_distributed
from uplr.track.mlflow_run import stage_run

log = logging.getLogger(__name__)


def run_pseudo(cfg: Config, model_path: Path, out: Path, seed: int, stage: str, summary: Path | None = None) -> None:
    sweep_stale(out, *([summary] if summary is not None else []))  # what a killed run left
    dist = init_distributed(cfg.train.device, cfg.train.threads)
    tags = {"kind": "pseudo_label", "benchmark": cfg.benchmark, "seed": seed, "method": cfg.upst.method}
    with stage_run(cfg.tracking.experiment, stage, f"pseudo/{cfg.upst.method}/seed{seed}",
                   [Path(model_path), cfg.path(cfg.data.target.root)], tags,
                   {"method": cfg.upst.method, **selector_params(cfg, cfg.upst.method)}) as mlrun:
        model = load_model(cfg, model_path, dist.device)
        result = write_pseudo_labels(cfg, model, dist.device, out)
        shares = zip(CLASSES_19, result["kept_share"], strict=False)  # per class: logged for every rule
        mlrun.log_metrics({"kept_share_all": result.get("kept_share_all"),
                           **{f"kept_share/{c}": v for c, v in shares if v is not None}})
        if summary is not None:
            write_json(summary, result)
            mlrun.log_artifact(summary)


def run_quality(cfg: Config, model_path: Path, out: Path, seed: int, stage: str) -> dict[str, Any]:
    """Precision / coverage of each pseudo-label method on the target train split's ground truth."""
    sweep_stale(out)  # what a killed run left
    dist = init_distributed(cfg.train.device, cfg.train.threads)
    ds = configured.target_train(cfg)
    if not ds.has_labels:
        log.warning("target train split has no labels: no pseudo-label quality report")
        write_json(out, {"skipped": "target train split has no ground truth"})
        return {}
    methods = list(cfg.upst.quality_methods)
    tags = {"kind": "pseudo_quality", "benchmark": cfg.benchmark, "seed": seed}
    with stage_run(cfg.tracking.experiment, stage, f"pseudo_quality/seed{seed}",
                   [Path(model_path), cfg.path(cfg.data.target.root)], tags, {"methods": ",".join(methods)}) as mlrun:
        model = load_model(cfg, model_path, dist.device)
        selectors = {m: make_selector(cfg, m) for m in methods}
        stats = PixelStats(cfg.model.num_classes, cfg.upst.bins)
        for _i, _n, prob, _l in iter_probs(model, ds, dist.device, cfg.evaluate.batch_size, cfg.train.amp,
                                           desc="quality: statistics"):
            stats.update(prob)
        stats.all_reduce()
        for s in selectors.values():
            s.fit(stats)

        def triples(method):
            sel = selectors[method]
            for _i, _n, prob, label in iter_probs(model, ds, dist.device, cfg.evaluate.batch_size, cfg.train.amp,
                                                  desc=f"quality: {method}"):
                yield sel.assign(prob), prob.argmax(0), label

        reports = {m: quality_report(triples(m), cfg.model.num_classes) for m in methods}
        result = {"methods": reports, "classes": list(CLASSES_19)}
        write_json(out, result)
        metrics = {}
        for m, rep in reports.items():
            for key in ("precision", "coverage", "mean_precision", "mean_coverage"):
                if isinstance(rep.get(key), int | float):
                    metrics[f"quality/{m}/{key}"] = rep[key]
            for c, per in zip(CLASSES_19, rep["per_class"], strict=True):
                for key in ("precision", "coverage"):
                    if per[key] is not None:
                        metrics[f"quality/{m}/{key}/{c}"] = per[key]
        mlrun.log_metrics(metrics)
        mlrun.log_artifact(out)
    return result
