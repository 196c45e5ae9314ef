"""The code a stage runs: every uplr module its entry point imports, directly or not, found statically.

A stage's command is ``python -m uplr.runner -- uplr <command> ...``: the runner, the CLI's dispatch
and the entry module (uplr/stages/<stage>.py), plus everything those import within uplr — at module
level or inside a function, since most heavy imports here are deferred. The CLI is the exception: it
imports every stage's module inside the function of that stage's command, so only its module-level
imports count (the stage's own command imports its entry module, which is listed anyway).

These files are the stage's code dependencies in dvc.yaml (uplr/pipelines.py) and part of the
resume fingerprint (a checkpoint written by other code is never resumed). tests/test_grid.py checks
the derivation against what a fresh interpreter imports and against the files whose code runs while
the stage runs.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO = PACKAGE_DIR.parent
DISPATCHERS = ("uplr.cli",)
"""Modules whose function-level imports belong to other commands: only their module-level imports count."""
COMMAND_PATH = ("uplr.runner", "uplr.cli")
"""What every stage command runs before its entry module."""


def module_file(module: str) -> Path | None:
    """The source file of a uplr module (``None`` for names outside uplr or that do not exist)."""
    if module != "uplr" and not module.startswith("uplr."):
        return None
    rel = Path(*module.split("."))
    for cand in (REPO / rel / "__init__.py", REPO / rel.with_suffix(".py")):
        if cand.is_file():
            return cand
    return None


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports(module: str, top_level_only: bool) -> set[str]:
    path = module_file(module)
    if path is None:
        return set()
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, path.name == "__init__.py")
            found.add(base)
            # `from uplr.x import y` may import the submodule uplr.x.y
            found.update(f"{base}.{a.name}" for a in node.names if a.name != "*")
    # importing uplr.a.b runs uplr/__init__.py and uplr/a/__init__.py too
    out: set[str] = set()
    for name in found:
        parts = name.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {m for m in out if module_file(m) is not None}


@cache
def closure(*entries: str) -> tuple[str, ...]:
    """Every uplr module that running ``entries`` may import (sorted module names)."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        mod = todo.pop()
        if mod in seen or module_file(mod) is None:
            continue
        seen.add(mod)
        parents = mod.split(".")
        todo.extend(".".join(parents[:i]) for i in range(1, len(parents)))
        todo.extend(_imports(mod, top_level_only=mod in DISPATCHERS))
    return tuple(sorted(seen))


def stage_files(entry: str) -> list[str]:
    """Repository-relative paths of the files a stage whose entry module is ``entry`` runs."""
    mods = closure(*COMMAND_PATH, entry)
    return sorted(str(module_file(m).relative_to(REPO)) for m in mods)  # type: ignore[union-attr]


def code_hash(entry: str, extra: tuple[str, ...] = ()) -> str:
    """sha256 over the stage's files (path and bytes): the code part of the resume fingerprint."""
    h = hashlib.sha256()
    for rel in [*stage_files(entry), *extra]:
        h.update(rel.encode() + b"\0" + (REPO / rel).read_bytes() + b"\0")
    return h.hexdigest()
