"""Spec-conformant fakes of the four real dataset layouts (tests/fixtures/LABEL_ENCODINGS.md).

Each ``make_fake_*`` writes ``n`` frames of ``size`` = (width, height) with seeded random content into
``root`` and returns the path of a list file naming them (usable as the loaders' ``split``). Labels
are drawn from the real label values of each format, void/ignored ids included, in 4x4 blocks. The
files are in the real on-disk formats (GTA5 palette PNG labels, SYNTHIA 3-channel 16-bit labels,
Cityscapes 8-bit labelIds, NTHU JPEG frames + ``_eval.png``), at any size: tiny for the tests, the
datasets' real sizes for the smoke run (:data:`REAL_SIZES`, ``make reproduce ... SMOKE=1``).
Keep this API stable: tests/fakes.py re-exports it and test modules import it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from cityscapesscripts.helpers.labels import labels as CS_LABELS
from PIL import Image

# Cityscapes labelIds present in labelIds images (0..33), and the GTA5 palette (index = labelId;
# index 34 is the license-plate colour, as in the real GTA5 palette).
CS_LABEL_IDS = tuple(sorted(lab.id for lab in CS_LABELS if lab.id >= 0))
_CS_COLORS = {lab.id: lab.color for lab in CS_LABELS if lab.id >= 0}
GTA5_PALETTE = [c for i in CS_LABEL_IDS for c in _CS_COLORS[i]] + [0, 0, 142]
SYNTHIA_IDS = tuple(range(23))
NTHU_LABEL_IDS = (0, 1, 4, 7, 8, 11, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 32, 33)

REAL_SIZES = {"gta5": (1914, 1052), "synthia": (1280, 760), "cityscapes": (2048, 1024), "nthu": (2048, 1024)}
"""(width, height) of the real datasets' frames (LABEL_ENCODINGS.md; most GTA5 frames are 1914x1052)."""


def _rgb(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _blocks(
    rng: np.random.Generator, values: tuple[int, ...], size: tuple[int, int], block: int = 4
) -> np.ndarray:
    """HxW array of random draws from ``values``, constant on block x block tiles."""
    w, h = size
    coarse = rng.choice(np.asarray(values), size=(-(-h // block), -(-w // block)))
    return np.repeat(np.repeat(coarse, block, axis=0), block, axis=1)[:h, :w]


def write_palette_png(path: Path, indices: np.ndarray, palette: list[int] | None = None) -> None:
    """Write ``indices`` (HxW uint8) as a palette PNG (GTA5 label format)."""
    im = Image.fromarray(indices.astype(np.uint8), mode="P")
    im.putpalette(palette or GTA5_PALETTE)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def write_synthia_label(path: Path, ids: np.ndarray, rng: np.random.Generator | None = None) -> None:
    """Write a SYNTHIA GT/LABELS file: 3-channel 16-bit PNG, class id in R, instance ids in G, junk in B."""
    rng = rng or np.random.default_rng(0)
    h, w = ids.shape
    bgr = np.empty((h, w, 3), dtype=np.uint16)
    bgr[:, :, 2] = ids  # R (OpenCV stores BGR)
    bgr[:, :, 1] = rng.integers(0, 3000, size=(h, w))  # G: instance id
    bgr[:, :, 0] = rng.integers(0, 65536, size=(h, w))  # B: unrelated
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), bgr):
        raise OSError(f"could not write {path}")


def _save(path: Path, arr: np.ndarray, **kw: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)


def make_fake_gta5(root: str | Path, n: int = 3, size: tuple[int, int] = (64, 32), seed: int = 0) -> Path:
    """``images/NNNNN.png`` + palette ``labels/NNNNN.png``; list ``<root>/all.txt`` (``00001.png`` lines)."""
    root, rng = Path(root), np.random.default_rng(seed)
    names = [f"{k:05d}.png" for k in range(1, n + 1)]
    for name in names:
        _save(root / "images" / name, _rgb(rng, size))
        write_palette_png(root / "labels" / name, _blocks(rng, CS_LABEL_IDS + (34,), size))
    return _write_list(root / "all.txt", names)


def make_fake_synthia(root: str | Path, n: int = 3, size: tuple[int, int] = (64, 32), seed: int = 0) -> Path:
    """``RGB/NNNNNNN.png`` + 16-bit ``GT/LABELS/NNNNNNN.png``; list ``<root>/all.txt`` (``RGB/...`` lines)."""
    root, rng = Path(root), np.random.default_rng(seed)
    names = [f"{k:07d}.png" for k in range(n)]
    for name in names:
        _save(root / "RGB" / name, _rgb(rng, size))
        write_synthia_label(root / "GT" / "LABELS" / name, _blocks(rng, SYNTHIA_IDS, size), rng)
    return _write_list(root / "all.txt", [f"RGB/{name}" for name in names])


def make_fake_cityscapes(
    root: str | Path, split: str = "val", n: int = 3, size: tuple[int, int] = (64, 32), seed: int = 0
) -> Path:
    """``leftImg8bit/<split>/<city>/...`` + gray ``gtFine/.../*_gtFine_labelIds.png``.

    List: ``<root>/<split>.txt``."""
    root, rng = Path(root), np.random.default_rng(seed)
    cities = ("frankfurt", "lindau", "munster")
    entries = []
    for k in range(n):
        city = cities[k % len(cities)]
        stem = f"{city}_{k:06d}_000019"
        _save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", _rgb(rng, size))
        ids = _blocks(rng, CS_LABEL_IDS, size).astype(np.uint8)
        _save(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", ids)
        entries.append(f"{city}/{stem}_leftImg8bit.png")
    return _write_list(root / f"{split}.txt", entries)


def make_fake_nthu(
    root: str | Path,
    city: str = "Rome",
    n: int = 3,
    size: tuple[int, int] = (64, 32),
    seed: int = 0,
    split: str = "test",
) -> Path:
    """``<City>/Images/{Train,Test}/<id>.jpg`` (+ ``Labels/Test/<id>_eval.png`` for test).

    List: ``<root>/<City>/<split>.txt``."""
    root, rng = Path(root), np.random.default_rng(seed)
    folder = {"train": "Train", "test": "Test"}[split]
    ids = [f"pano_{k:05d}_0_180" for k in range(n)]
    for ident in ids:
        _save(root / city / "Images" / folder / f"{ident}.jpg", _rgb(rng, size), quality=90)
        if folder == "Test":
            labs = _blocks(rng, NTHU_LABEL_IDS, size).astype(np.uint8)
            _save(root / city / "Labels" / "Test" / f"{ident}_eval.png", labs)
    return _write_list(root / city / f"{split}.txt", ids)


def _write_list(path: Path, entries: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{e}\n" for e in entries))
    return path
