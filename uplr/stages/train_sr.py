"""Stage ``train_sr``: +SR, the translated source set drawn with soft-balance weights p̂_i over all classes.

p_c, p_i and p̂_i (uplr/method/resampling.py) come from the class_stats stage's per-image class counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from uplr.config import Config
from uplr.data import configured
from uplr.method.resampling import soft_balance_weights
from uplr.train.loop import TrainJob
from uplr.train.rowrun import plain_job, train_row


def build(cfg: Config, row: str, seed: int, args: dict[str, Any]) -> tuple[TrainJob, list[Path]]:
    job, inputs = plain_job(cfg, row, seed, args)
    r = cfg.resample
    w = soft_balance_weights(configured.load_counts(args["class_stats"], len(job.labeled)), r.lam, r.alpha, r.mu,
                             None, r.mu_quantile)
    job.labeled_weights = w.p_hat
    job.fingerprint_extra.update({"mu": w.mu, "alpha": w.alpha, "p_i_nonzero": int((w.p_i > 0).sum())})
    return job, inputs + [Path(args["class_stats"])]


def run(cfg: Config, row: str, seed: int, out: Path, resume_dir: Path | None, stage: str,
        args: dict[str, Any] | None = None) -> None:
    train_row(cfg, row, seed, out, resume_dir, stage, args or {}, build=build, entry=__name__)
