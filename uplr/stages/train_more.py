"""Stage ``train_more``: the control rows, a parent model continued without the next component.

A component's Δ in Table 3 mixes the component with the extra steps of a continued row. Each control
continues its parent for as many steps as the row it controls (the section named by the grid's
``steps_from``: ``tgaa`` for ``sr_more``, ``upst`` for ``tgaa_more``), with the parent's own sampling:

- ``sr_more``: the +SR model, SR's soft-balance weights over all classes (no S_k);
- ``tgaa_more``: the +TGAA model, TGAA's last weights (its last S_k), no pseudo labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from uplr import experiments as X
from uplr.config import Config
from uplr.data import configured
from uplr.errors import UplrError
from uplr.method.resampling import soft_balance_weights
from uplr.method.tgaa import weights_for_s_k
from uplr.train import checkpoint as ckpt
from uplr.train.loop import TrainJob
from uplr.train.rowrun import continue_from, plain_job, train_row


def build(cfg: Config, row: str, seed: int, args: dict[str, Any]) -> tuple[TrainJob, list[Path]]:
    spec = X.row(row)
    job, inputs = plain_job(cfg, row, seed, args)
    parent = Path(args["init_model"])
    section = getattr(cfg, spec.steps_from)
    continue_from(job, parent, section.iterations, section.lr_schedule)
    s_k = None
    if spec.weights == "tgaa":
        s_k = ckpt.load_meta(parent).get("tgaa_S_k")
        if not s_k:
            raise UplrError(f"{parent}: the model has no TGAA classes (meta tgaa_S_k); re-run its stage")
    r = cfg.resample
    counts = configured.load_counts(args["class_stats"], len(job.labeled))
    if s_k is None:  # SR's weights over all classes
        job.labeled_weights = soft_balance_weights(counts, r.lam, r.alpha, r.mu, None, r.mu_quantile).p_hat
    else:  # TGAA's last S_k under tgaa.weights
        job.labeled_weights = weights_for_s_k(counts, s_k, cfg.tgaa, r)[0]
    job.fingerprint_extra["S_k"] = s_k
    return job, inputs + [parent, Path(args["class_stats"])]


def run(cfg: Config, row: str, seed: int, out: Path, resume_dir: Path | None, stage: str,
        args: dict[str, Any] | None = None) -> None:
    train_row(cfg, row, seed, out, resume_dir, stage, args or {}, build=build, entry=__name__)
