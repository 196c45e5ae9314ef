"""Logging set-up for every ``uplr`` process, in a module that imports nothing heavy (no torch, no MLflow).

``uplr evaluate --pred-dir`` only decodes PNGs: its start-up should not pay for importing torch. Every
handler masks the password of any URI in every record (``scheme://user:***@host``): ours, MLflow's,
urllib3's.
"""

from __future__ import annotations

import logging
import os
import re

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/\s:@]*):(?P<pw>[^/\s@]+)@")


def mask_credentials(text: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://user:***@host`` anywhere in ``text``."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(text))


class MaskCredentials(logging.Filter):
    """A handler filter that masks URI passwords in every record (ours, MLflow's, urllib3's...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logging's problem, not ours
            return True
        masked = mask_credentials(msg)
        if masked != msg:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_credentials(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask_credentials(record.exc_text)
        return True


def setup_logging(verbose: bool = False) -> None:
    """INFO (DEBUG with ``verbose``) on rank 0 of a torchrun job, WARNING on the other ranks."""
    level = logging.DEBUG if verbose else logging.INFO
    if int(os.environ.get("RANK", "0")) != 0:
        level = logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(MaskCredentials())
    for noisy in ("alembic", "mlflow", "urllib3", "botocore", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
