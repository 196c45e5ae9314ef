"""Which config keys a piece of code reads: the recorder behind tests/test_grid.py.

``with record_reads() as reads:`` patches attribute access on the config dataclasses of every config
that :func:`uplr.config.load_config` returns inside the block, and collects the dotted keys of the
leaf values read (``train.lr``, ``data.source.size``). Reading a section (``cfg.train``) is not a read
of its keys; :func:`uplr.config.to_dict` on it reads every key; :func:`uplr.reads.values` (how the
declared keys are logged and hashed) is not a read.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any


def _walk(obj: Any, prefix: str, paths: dict[int, str], classes: set[type]) -> None:
    paths[id(obj)] = prefix
    classes.add(type(obj))
    for f in dataclasses.fields(obj):
        v = object.__getattribute__(obj, f.name)
        if dataclasses.is_dataclass(v):
            _walk(v, f"{prefix}{f.name}.", paths, classes)


@contextlib.contextmanager
def record_reads() -> Iterator[set[str]]:
    """Record the config keys read by configs loaded inside the block (a set, filled as they are read)."""
    from uplr import config as config_module

    reads: set[str] = set()
    paths: dict[int, str] = {}
    patched: dict[type, Any] = {}
    keep: list[Any] = []  # configs stay alive, so their ids are not reused

    def patch(cls: type) -> None:
        if cls in patched:
            return
        patched[cls] = cls.__dict__.get("__getattribute__")
        names = {f.name for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
        base = object.__getattribute__

        def getattribute(self: Any, name: str) -> Any:
            value = base(self, name)
            if name in names:
                prefix = paths.get(id(self))
                if prefix is not None and not dataclasses.is_dataclass(value):
                    reads.add(prefix + name)
            return value

        cls.__getattribute__ = getattribute  # type: ignore[method-assign]

    original = config_module.load_config

    def load_config(*args: Any, **kwargs: Any):
        cfg = original(*args, **kwargs)
        classes: set[type] = set()
        _walk(cfg, "", paths, classes)
        keep.append(cfg)
        for cls in classes:
            patch(cls)
        return cfg

    config_module.load_config = load_config
    try:
        yield reads
    finally:
        config_module.load_config = original
        for cls, orig in patched.items():
            if orig is None:
                del cls.__getattribute__
            else:
                cls.__getattribute__ = orig
