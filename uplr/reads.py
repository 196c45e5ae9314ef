"""Config keys as the experiment grid declares them: their values (MLflow params, resume fingerprint).

A key names a leaf (``train.lr``) or a section (``train``: every key in it). tests/config_recorder.py
records which keys a stage really reads, and tests/test_grid.py compares them with the grid.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def _flat(obj: Any, prefix: str, out: dict[str, Any]) -> None:
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            if not f.metadata.get("internal"):
                _flat(object.__getattribute__(obj, f.name), f"{prefix}.{f.name}", out)
    else:
        out[prefix] = obj


def values(cfg: Any, keys: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """The values of config keys (a section: each of its keys), flat: ``{"train.lr": 0.02, ...}``.

    Not a read in :func:`record_reads`' sense: this is how the declared keys are logged and hashed.
    """
    out: dict[str, Any] = {}
    for key in keys:
        obj = cfg
        for part in key.split("."):
            obj = object.__getattribute__(obj, part)
        _flat(obj, key, out)
    return out


def leaf_keys(cfg: Any, keys: tuple[str, ...] | list[str]) -> set[str]:
    """The leaf keys that ``keys`` stand for (a section: every key in it)."""
    return set(values(cfg, keys))
