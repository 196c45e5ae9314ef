"""Atomic file output: nothing half-written is ever left where DVC would cache it.

Every writer goes through :func:`atomic_path` (a file) or :func:`atomic_dir` (a folder): the content
is written to a temporary sibling and renamed into place only when complete, so an interrupted or
failed stage leaves either the old output or none.

Temporary names follow one pattern tied to the final path, ``.<name>.uplr-<random>.tmp`` next to
``<name>`` (:func:`temp_pattern`), so that the stage that owns an output removes what a killed run left
behind with :func:`sweep_stale` when it starts (a kill -9 runs no ``finally``).

A write that fails for a reason the user can fix (a read-only folder, a full disk, a quota) becomes a
:class:`~uplr.errors.UplrError` naming the path and the fix (:func:`write_error`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from uplr.errors import UplrError

log = logging.getLogger(__name__)

TEMP_MARK = "uplr-"
"""Temporary outputs are named ``.<final name>.uplr-<random>.tmp``."""

# what a full disk, a read-only folder or a quota looks like, and how to fix it
_WRITE_FIXES = {
    errno.ENOSPC: "no space left on the device: free disk space there (e.g. `dvc gc`, old runs) and re-run",
    errno.EDQUOT: "disk quota exceeded: free space within your quota and re-run",
    errno.EFBIG: "the file is too large for this file system: write to another one",
    errno.EROFS: "the file system is read-only: write to a writable folder (or re-mount it writable)",
    errno.EACCES: "make the folder writable (chmod u+w) or run from a writable copy",
    errno.EPERM: "make the folder writable (chmod u+w) or run from a writable copy",
}


def write_error(exc: BaseException, target: str | Path) -> UplrError | None:
    """The one-line UplrError for a failed write of ``target``, or None when ``exc`` is not one.

    OSError with ENOSPC, EDQUOT, EFBIG, EROFS, EACCES or EPERM; also the RuntimeError that torch's and
    numpy's C writers raise instead of an OSError (then a full disk is told from the free space left).
    """
    target = Path(target)
    if isinstance(exc, OSError) and exc.errno in _WRITE_FIXES:
        where = exc.filename if exc.filename not in (None, "") else target
        outside = not str(Path(where).absolute()).startswith(str(target.parent.absolute()))
        if exc.errno in (errno.EACCES, errno.EPERM) and outside:
            return None  # reading an input inside the block, not writing the output: not ours to explain
        return UplrError(f"cannot write {target} ({exc.strerror or os.strerror(exc.errno)}: {where}); "
                         f"{_WRITE_FIXES[exc.errno]}")
    if isinstance(exc, RuntimeError) and re.search(r"write failed|failed writing|unexpected pos", str(exc)):
        try:
            free = shutil.disk_usage(_existing_parent(target)).free
        except OSError:
            free = -1
        reason = _WRITE_FIXES[errno.ENOSPC] if 0 <= free < 64 * 2**20 else \
            "check that the folder is writable and the disk is not full, then re-run"
        return UplrError(f"cannot write {target} ({str(exc).splitlines()[0]}; {max(free, 0) // 2**20} MiB free "
                         f"there); {reason}")
    return None


def is_write_error(exc: BaseException) -> bool:
    """True for the OSErrors :func:`write_error` explains (the CLI's last resort for writes elsewhere)."""
    return isinstance(exc, OSError) and exc.errno in _WRITE_FIXES


def _existing_parent(p: Path) -> Path:
    p = Path(p).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


@contextlib.contextmanager
def _explained(target: Path) -> Iterator[None]:
    """Turn a failed write of ``target`` (full disk, read-only folder) into one UplrError line."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        err = write_error(exc, target)
        if err is None:
            raise
        raise err from exc


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_pattern(target: str | Path) -> re.Pattern[str]:
    """Names of the temporary files/folders of ``target`` in its folder (ours, and today's ``.old``).

    Also matches the names earlier versions used (``.<name>.<8 random chars>.tmp`` and ``.<name>.old``).
    """
    name = re.escape(Path(target).name)
    return re.compile(rf"^\.{name}\.(?:{TEMP_MARK}[a-z0-9_]+|[a-z0-9_]{{8}})\.tmp$|^\.{name}\.old$")


def stale_temps(target: str | Path, inside: bool = False) -> list[Path]:
    """Temporary siblings of ``target`` left by an interrupted write; ``inside``: also any under it."""
    target = Path(target)
    found: list[Path] = []
    if target.parent.is_dir():
        pat = temp_pattern(target)
        found += [target.parent / n for n in sorted(os.listdir(target.parent)) if pat.match(n)]
    if inside and target.is_dir():
        mark = re.compile(rf"^\..+\.(?:{TEMP_MARK}[a-z0-9_]+|[a-z0-9_]{{8}})\.tmp$|^\..+\.old$")
        for dirpath, dirnames, filenames in os.walk(target):
            hits = [n for n in dirnames + filenames if mark.match(n)]
            found += [Path(dirpath) / n for n in sorted(hits)]
            dirnames[:] = [d for d in dirnames if d not in hits]
    return found


def sweep_stale(*targets: str | Path, inside: bool = False) -> list[Path]:
    """Remove what a killed write of each target left behind (call at the start of the owning stage).

    ``inside=True`` also sweeps temporaries anywhere under a target folder that the stage owns whole
    (e.g. ``reports/``). Returns the removed paths.
    """
    removed = []
    for target in targets:
        for p in stale_temps(target, inside=inside):
            with _explained(p):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink(missing_ok=True)
            removed.append(p)
    if removed:
        log.info("removed %d stale temporary output(s) of an interrupted run: %s", len(removed),
                 ", ".join(str(p) for p in removed[:5]) + (" ..." if len(removed) > 5 else ""))
    return removed


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success."""
    target = Path(target)
    with _explained(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{TEMP_MARK}", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            if tmp_path.exists():
                os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
            os.replace(tmp_path, target)
        finally:
            if tmp_path.exists():
                tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``target``; it replaces ``target`` on success.

    Temporaries of ``target`` that an interrupted earlier run left are removed first.
    """
    target = Path(target)
    with _explained(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{TEMP_MARK}", suffix=".tmp", dir=target.parent))
        try:
            yield tmp
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
            if target.exists():
                old = target.with_name(f".{target.name}.{TEMP_MARK}old.tmp")
                if old.exists():
                    shutil.rmtree(old)
                os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old)
            else:
                os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def write_json(target: str | Path, data: Any) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
