"""Logging set-up for every ``uplr`` process, in a module that imports nothing heavy (no torch, no MLflow).

``uplr evaluate --pred-dir`` only decodes PNGs: its start-up should not pay for importing torch.
"""

from __future__ import annotations

import logging
import os


def setup_logging(verbose: bool = False) -> None:
    """INFO (DEBUG with ``verbose``) on rank 0 of a torchrun job, WARNING on the other ranks."""
    level = logging.DEBUG if verbose else logging.INFO
    if int(os.environ.get("RANK", "0")) != 0:
        level = logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("alembic", "mlflow", "urllib3", "botocore", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
