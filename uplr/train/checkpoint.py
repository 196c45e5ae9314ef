"""Training checkpoints: model, optimizers, schedulers and RNG state, written atomically.

A killed run resumes from ``<resume_dir>/last.pt`` and ends with the same metrics as an uninterrupted
one: the samplers are pure functions of ``(seed, step)`` (uplr/train/sampler.py), so the step counter
plus the states saved here are all that is needed. A checkpoint carries the fingerprint of the job
that wrote it; one written for other settings is ignored (logged), never silently resumed. It also
carries the id of the MLflow run that wrote it, so that a resumed stage continues that run.

Files are written byte-for-byte deterministically: ``torch.save`` to a path names the zip archive
inside after the file (here a random temporary name), so the same weights gave a new md5 on each save;
we serialise to memory (fixed archive name) and write the bytes atomically.
"""

from __future__ import annotations

import io
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from uplr.errors import UplrError
from uplr.io import atomic_path

log = logging.getLogger(__name__)

LAST = "last.pt"


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def to_bytes(state: dict[str, Any]) -> bytes:
    """``torch.save`` into memory: the same state always gives the same bytes (no file name inside)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def save(path: Path, state: dict[str, Any]) -> None:
    data = to_bytes(state)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def peek_run_id(resume_dir: Path | None, fingerprint: str) -> str | None:
    """The MLflow run id stored in the checkpoint that :func:`load_resume` would resume, else None."""
    if resume_dir is None or not (Path(resume_dir) / LAST).is_file():
        return None
    try:
        state = torch.load(Path(resume_dir) / LAST, map_location="cpu", weights_only=False, mmap=True)
    except Exception:  # noqa: BLE001 - load_resume reports an unreadable file with the fix
        return None
    if state.get("fingerprint") != fingerprint:
        return None
    return state.get("run_id")


def load_resume(resume_dir: Path | None, fingerprint: str) -> dict[str, Any] | None:
    """The last checkpoint in ``resume_dir`` if it was written by the same job, else None."""
    if resume_dir is None:
        return None
    path = Path(resume_dir) / LAST
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001
        raise UplrError(f"{path}: unreadable checkpoint ({exc}); delete it to start the run afresh") from exc
    if state.get("fingerprint") != fingerprint:
        log.warning("%s was written for other settings; starting afresh (it will be overwritten)", path)
        return None
    log.info("resuming from %s at step %d", path, state["step"])
    return state


def load_model_state(path: Path) -> dict[str, torch.Tensor]:
    """The model weights of a file written by :func:`save_model` (or a training checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise UplrError(f"{path}: model file not found; run the stage that trains it (dvc repro) first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise UplrError(f"{path}: unreadable model file ({exc}); re-run the stage that writes it") from exc
    return state["model"] if "model" in state else state


def save_model(path: Path, model_state: dict[str, torch.Tensor], meta: dict[str, Any],
               discriminators: dict[str, dict[str, torch.Tensor]] | None = None) -> None:
    """The stage's model output: weights, the discriminators' weights (a row continued from this model
    keeps them) and a small JSON-able description (no optimizer state)."""
    save(path, {"model": model_state, "meta": meta, "discriminators": discriminators or {}})


def _load(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UplrError(f"{path}: model file not found; run the stage that trains it (dvc repro) first")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise UplrError(f"{path}: unreadable model file ({exc}); re-run the stage that writes it") from exc


def load_discriminators(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The discriminators saved with a model (empty for a model trained without them)."""
    return dict(_load(path).get("discriminators") or {})


def load_meta(path: Path) -> dict[str, Any]:
    """The description saved with a model (row, seed, step, chain_step, MLflow run id, ...)."""
    return dict(_load(path).get("meta") or {})
