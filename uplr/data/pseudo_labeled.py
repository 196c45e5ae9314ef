"""Target images with pseudo labels (self-training): the target loader, labels read from a pseudo folder.

Pseudo labels are uint8 PNGs (trainIds, :data:`~uplr.data.labels.IGNORE_LABEL` = ignore) at ``<pseudo_dir>/<entry without .png>.png``, as
written by uplr/method/pseudo.py; they were made at the training resolution of the images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from uplr.data.files import read_index_png
from uplr.data.labels import IGNORE_LABEL, NUM_CLASSES
from uplr.errors import UplrError


def pseudo_name(entry: str) -> str:
    """The pseudo-label name of a list entry: the entry without its image extension."""
    return entry[: -len(Path(entry).suffix)] if Path(entry).suffix else entry


class PseudoLabeled(torch.utils.data.Dataset):
    def __init__(self, base, pseudo_dir: Path):
        self.base, self.pseudo_dir = base, Path(pseudo_dir)
        if not self.pseudo_dir.is_dir():
            raise UplrError(f"{self.pseudo_dir}: pseudo-label folder not found; run the pseudo_label stage first")
        missing = [n for n in base.names if not self.path(n).is_file()]
        if missing:
            raise UplrError(f"{self.pseudo_dir}: no pseudo label for {len(missing)} target images (e.g. "
                            f"{self.path(missing[0])}); re-run the pseudo_label stage for this target split")

    def path(self, entry: str) -> Path:
        return self.pseudo_dir / f"{pseudo_name(entry)}.png"

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.base[i]
        path = self.path(self.base.names[i])
        raw = read_index_png(path, "pseudo")  # a missing or corrupt file: one error naming it
        bad = (raw >= NUM_CLASSES) & (raw != IGNORE_LABEL)
        if bad.any():
            raise UplrError(f"{path}: pseudo label holds values {sorted(set(raw[bad].tolist()))[:5]} outside the "
                            f"trainIds 0..{NUM_CLASSES - 1} and {IGNORE_LABEL}; re-run the pseudo_label stage")
        h, w = item["image"].shape[-2:]
        label = Image.fromarray(raw)
        if label.size != (w, h):
            label = label.resize((w, h), Image.NEAREST)
        item["label"] = torch.from_numpy(np.asarray(label, dtype=np.int64))
        return item
