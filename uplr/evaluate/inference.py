"""Inference shared by evaluation, uncertainty statistics and pseudo-labelling.

:func:`iter_probs` yields, image by image, the softmax map at the resolution wanted (the label's native
resolution for scoring, the training resolution for pseudo labels): logits are upsampled bilinearly
first, then softmax/argmax — never the other way round.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from uplr.config import Config
from uplr.runtime import autocast, rank, world_size
from uplr.train.checkpoint import load_model_state


def load_model(cfg: Config, model_path: Path, device: torch.device) -> torch.nn.Module:
    from uplr.model.deeplab import build_model

    m = cfg.model
    model = build_model(m.trunk, m.num_classes, m.multi_level, m.aspp_all_branches, m.freeze_bn)
    model.load_state_dict(load_model_state(model_path))
    return model.to(device).eval()


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "image": torch.stack([it["image"] for it in items]),
        "label": [it["label"] for it in items],
        "name": [it["name"] for it in items],
        "index": [it["index"] for it in items],
    }


@torch.no_grad()
def iter_probs(
    model: torch.nn.Module,
    ds: Dataset,
    device: torch.device,
    batch_size: int = 4,
    amp: bool = True,
    desc: str = "predict",
    shard: bool = True,
) -> Iterator[tuple[int, str, torch.Tensor, torch.Tensor]]:
    """(index, name, prob C x H x W at label resolution, label H x W) for each image of this rank."""
    indices = list(range(len(ds)))
    if shard and world_size() > 1:
        indices = indices[rank() :: world_size()]
    loader = DataLoader(torch.utils.data.Subset(ds, indices), batch_size=batch_size, collate_fn=_collate)
    for batch in tqdm(loader, desc=desc, disable=rank() != 0, mininterval=2.0):
        img = batch["image"].to(device)
        with autocast(device, amp):
            _, main = model(img)
        main = main.float()
        for j, label in enumerate(batch["label"]):
            size = tuple(label.shape[-2:])
            logits = F.interpolate(main[j : j + 1], size=size, mode="bilinear", align_corners=False)
            yield batch["index"][j], batch["name"][j], F.softmax(logits[0], dim=0), label.to(device)
