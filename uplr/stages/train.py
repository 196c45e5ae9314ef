"""Stage ``train`` for the rows without resampling or pseudo labels: source-only, +AA, +IT and the oracle.

- ``source_only``: source labels only;
- ``aa``: + output-space adversarial adaptation on unlabelled target images;
- ``it``: + the source set translated to the target style (the ``translate`` stage's output);
- ``oracle``: target labels (the target-supervised upper bound; not a UDA method).

The rows with more to them have their own entry modules: ``train_sr``, ``train_tgaa``, ``train_upst``
(the experiment grid, uplr/experiments.py, names each row's). Outputs (under ``--out``): ``model.pt``
(the last snapshot's weights: the one reported), ``train_log.csv`` (curves, a DVC plot); under
``--resume-dir`` the resumable checkpoint (uplr/train/rowrun.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from uplr.config import Config
from uplr.train.rowrun import train_row


def run(cfg: Config, row: str, seed: int, out: Path, resume_dir: Path | None, stage: str,
        args: dict[str, Any] | None = None) -> None:
    train_row(cfg, row, seed, out, resume_dir, stage, args or {})
