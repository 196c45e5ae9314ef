"""Stage ``generate``: write the embedded benchmark (source in GTA5 format, target in Cityscapes format)."""

from __future__ import annotations

import logging

from uplr.config import Config, flatten, to_dict
from uplr.track.mlflow_run import stage_run

log = logging.getLogger(__name__)


def run(cfg: Config, stage: str = "generate") -> dict:
    from uplr.data.synthetic import generate

    g = cfg.generate
    out = cfg.path(g.out)
    with stage_run(cfg.tracking.experiment, stage, "generate", [], {"kind": "generate", "benchmark": cfg.benchmark},
                   flatten({"generate": to_dict(g)})) as mlrun:
        summary = generate(out, seed=g.seed, height=g.height, width=g.width, n_source=g.n_source,
                           n_target_train=g.n_target_train, n_target_val=g.n_target_val)
        mlrun.log_artifact(out / "summary.json")
        mlrun.log_artifact(out / "preview.png")
    log.info("embedded benchmark written to %s", out)
    return summary
