"""Initial weights for the segmentation network: scratch, our own files, or a peer's init checkpoint.

Three kinds of file are accepted:

* a plain state_dict in our layout (also a peer's released model, e.g. an ADVENT GTA5->Cityscapes
  checkpoint): loaded strictly;
* our training checkpoint, a dict with a ``"model"`` state_dict: loaded strictly;
* a peer *init* checkpoint (ADVENT/AdaptSegNet start from ``DeepLab_resnet_pretrained_imagenet.pth``):
  every key carries a ``Scale.`` prefix and the file holds a classifier for another label set. The prefix
  is stripped, classifier heads whose entries do not all fit ours are skipped (as ADVENT does), and every
  backbone tensor must be present with the right shape.

``num_batches_tracked`` buffers may be absent (files written before PyTorch 0.4.1 lack them); the
model keeps its own. ``init: scratch`` is an explicit choice and is logged, never a silent fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from uplr.errors import UplrError

log = logging.getLogger(__name__)

PEER_PREFIX = "Scale."
HEADS = ("layer5", "layer6")
USUAL_INIT = "DeepLab_resnet_pretrained_imagenet.pth"


def _optional(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def _head_of(key: str) -> str | None:
    first = key.split(".", 1)[0]
    return first if first in HEADS else None


def _few(keys: list[str], n: int = 5) -> str:
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _read(path: Path) -> tuple[Mapping[str, Tensor], str]:
    """Read ``path``; return the state_dict inside it (plain, or under ``"model"``) and which it was."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unpickling or IO failure is the same user-facing problem
        raise UplrError(
            f"{path}: cannot read it as PyTorch weights ({type(e).__name__}: {e}); re-download the file "
            "or point model.init at a state_dict / checkpoint saved with torch.save"
        ) from e
    source = "state_dict"
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj, source = obj["model"], "checkpoint"
    if not isinstance(obj, Mapping) or not obj or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()
    ):
        raise UplrError(
            f"{path}: not a state_dict (expected a mapping of parameter names to tensors, or a checkpoint "
            "dict with a 'model' state_dict); point model.init at DeepLab weights"
        )
    return obj, source


def _check_shapes(expected: Mapping[str, Tensor], given: Mapping[str, Tensor], keys: list[str]) -> list[str]:
    return [f"{k} {tuple(given[k].shape)} != {tuple(expected[k].shape)}" for k in keys
            if tuple(given[k].shape) != tuple(expected[k].shape)]


def _load_strict(model: nn.Module, state: Mapping[str, Tensor], path: Path) -> tuple[int, list[str]]:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    hard_missing = [k for k in missing if not _optional(k)]
    unexpected = [k for k in state if k not in expected]
    wrong = _check_shapes(expected, state, [k for k in state if k in expected])
    if hard_missing or unexpected or wrong:
        problems = []
        if hard_missing:
            problems.append(f"{len(hard_missing)} missing keys: {_few(hard_missing)}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys: {_few(unexpected)}")
        if wrong:
            problems.append(f"{len(wrong)} shape mismatches: {_few(wrong)}")
        raise UplrError(
            f"{path}: state_dict does not match the model ({getattr(model, 'trunk', '?')}, "
            f"{getattr(model, 'num_classes', '?')} classes, multi_level={getattr(model, 'multi_level', '?')}): "
            + "; ".join(problems)
            + ". Check model.trunk / model.num_classes / model.multi_level against the file"
        )
    if missing:
        log.info("init %s: %d num_batches_tracked buffers absent from the file; keeping the model's",
                 path.name, len(missing))
    model.load_state_dict({**expected, **state}, strict=True)
    return len(state), []


def _load_peer_init(model: nn.Module, state: Mapping[str, Tensor], path: Path) -> tuple[int, list[str]]:
    expected = model.state_dict()
    stripped = {k[len(PEER_PREFIX):]: v for k, v in state.items()}
    backbone_expected = [k for k in expected if _head_of(k) is None]
    missing = [k for k in backbone_expected if k not in stripped and not _optional(k)]
    wrong = _check_shapes(expected, stripped, [k for k in backbone_expected if k in stripped])
    if missing or wrong:
        problems = []
        if missing:
            problems.append(f"{len(missing)} backbone keys missing: {_few(missing)}")
        if wrong:
            problems.append(f"{len(wrong)} backbone shape mismatches: {_few(wrong)}")
        raise UplrError(
            f"{path}: init checkpoint ('{PEER_PREFIX}' prefix) does not fit the {getattr(model, 'trunk', '?')} "
            "backbone: " + "; ".join(problems)
            + f". {USUAL_INIT} fits model.trunk: resnet101 only"
        )

    take: dict[str, Tensor] = {k: stripped[k] for k in backbone_expected if k in stripped}
    skipped: list[str] = []
    for head in HEADS:
        given = [k for k in stripped if _head_of(k) == head]
        if not given:
            continue
        ours = [k for k in expected if _head_of(k) == head]
        fits = (sorted(given) == sorted(ours)
                and not _check_shapes(expected, stripped, given))
        if fits:
            take.update({k: stripped[k] for k in given})
        else:
            skipped += given
            shapes = {tuple(stripped[k].shape) for k in given if k.endswith("weight")}
            log.info("init %s: skipping classifier %s (%d entries, weight shapes %s): it is the init's "
                     "classifier for another label set; ours stays randomly initialised",
                     path.name, head, len(given), sorted(shapes))
    extra = [k for k in stripped if k not in expected]
    extra = [k for k in extra if k not in skipped]
    if extra:
        skipped += extra
        log.warning("init %s: ignoring %d entries that are not in the model: %s", path.name, len(extra),
                    _few(extra))
    absent = [k for k in expected if k not in take and _head_of(k) is None]
    if absent:
        log.info("init %s: %d num_batches_tracked buffers absent from the file; keeping the model's",
                 path.name, len(absent))
    model.load_state_dict({**expected, **take}, strict=True)
    return len(take), skipped


def load_weights(model: nn.Module, init: str, base_dir: Path | None = None) -> dict:
    """Load ``model.init`` into ``model``; returns ``{"init", "source", "loaded", "skipped"}``.

    ``init`` is ``"scratch"`` (nothing loaded) or a path, relative to ``base_dir`` when given.
    """
    if init == "scratch":
        log.info("model.init is 'scratch': training from randomly initialised weights, nothing loaded")
        return {"init": "scratch", "source": "scratch", "loaded": 0, "skipped": []}
    path = Path(init).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if not path.is_file():
        raise UplrError(
            f"model.init: weights file {path} not found. Download the init weights (usually ADVENT's "
            f"{USUAL_INIT}, ImageNet-pretrained DeepLab-v2 ResNet-101) and set model.init to its path, "
            "or set model.init: scratch to train from random weights"
        )
    state, source = _read(path)
    if all(k.startswith(PEER_PREFIX) for k in state):
        source = "peer_init"
        loaded, skipped = _load_peer_init(model, state, path)
    else:
        loaded, skipped = _load_strict(model, state, path)
    log.info("model.init: loaded %d tensors from %s (%s); skipped %d", loaded, path, source, len(skipped))
    return {"init": str(path), "source": source, "loaded": loaded, "skipped": skipped}
