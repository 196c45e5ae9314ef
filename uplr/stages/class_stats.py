"""Stage ``class_stats``: per-image class pixel counts of the source set, computed once.

SR and TGAA derive their sampling weights p̂_i from this n_images x C matrix (uplr/method/resampling.py);
it is a DVC output, so changing λ, α, μ or k re-uses it instead of re-reading every label.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from uplr.config import Config
from uplr.data import configured
from uplr.method.resampling import image_class_counts
from uplr.track.mlflow_run import stage_run

log = logging.getLogger(__name__)


def run(cfg: Config, out: Path, stage: str = "class_stats") -> np.ndarray:
    src = configured.dataset(cfg, cfg.data.source, label_size="native")
    with stage_run(cfg.tracking.experiment, stage, "class_stats", [cfg.path(cfg.data.source.root)],
                   {"kind": "class_stats", "benchmark": cfg.benchmark}) as mlrun:
        counts = np.stack([image_class_counts(src.read_label(i), cfg.model.num_classes)
                           for i in tqdm(range(len(src)), desc="class counts", mininterval=2.0)])
        configured.save_counts(out, counts, list(src.names))
        total = counts.sum(0)
        mlrun.log_metrics({f"source_share/{i}": float(v) for i, v in enumerate(total / max(1, total.sum()))})
    log.info("class counts of %d source images -> %s", len(src), out)
    return counts

