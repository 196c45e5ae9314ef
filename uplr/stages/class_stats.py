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
from uplr.errors import UplrError
from uplr.io import atomic_path
from uplr.method.resampling import image_class_counts
from uplr.stages import common
from uplr.track.mlflow_run import stage_run

log = logging.getLogger(__name__)


def run(cfg: Config, out: Path, stage: str = "class_stats") -> np.ndarray:
    src = common.dataset(cfg, cfg.data.source, label_size="native")
    with stage_run(cfg.tracking.experiment, stage, "class_stats", common.data_inputs(cfg)[:1],
                   {"kind": "class_stats", "benchmark": cfg.benchmark}) as mlrun:
        counts = np.stack([image_class_counts(src.read_label(i), cfg.model.num_classes)
                           for i in tqdm(range(len(src)), desc="class counts", mininterval=2.0)])
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, counts=counts, names=np.array(src.names))
        total = counts.sum(0)
        mlrun.log_metrics({f"source_share/{i}": float(v) for i, v in enumerate(total / max(1, total.sum()))})
    log.info("class counts of %d source images -> %s", len(src), out)
    return counts


def load_counts(path: Path, n_expected: int) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise UplrError(f"{path}: class statistics not found; run the class_stats stage (dvc repro class_stats)")
    counts = np.load(path)["counts"]
    if len(counts) != n_expected:
        raise UplrError(f"{path}: counts for {len(counts)} images but the source set has {n_expected}; "
                        "re-run the class_stats stage")
    return counts
