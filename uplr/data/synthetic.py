"""The embedded benchmark: seeded synthetic source and target domains in the real on-disk formats.

Both domains are street scenes drawn from the same layout prior (road to a horizon, sidewalks, a street
canyon of buildings, vegetation, walls and fences, poles with lights and signs, vehicles, persons and
riders) in the 19-class Cityscapes label space, so the whole pipeline runs on a CPU in minutes. They
differ the way GTA5 and Cityscapes do: a large gap in appearance (colour transform and per-class
colour offsets, texture, lighting, blur, noise; see :data:`uplr.data._scenes.STYLES`) and a smaller
one in content (class frequencies; :data:`uplr.data._scenes.LAYOUTS`).

Output (written atomically; a failed run leaves nothing)::

    <out>/source/images/00001.png            RGB
    <out>/source/labels/00001.png            palette PNG, index = Cityscapes labelId (GTA5 format)
    <out>/source/all.txt                     00001.png ...
    <out>/target/leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <out>/target/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png   (gray, labelId)
    <out>/target/{train,val}.txt             <city>/<city>_000000_000019_leftImg8bit.png ...
    <out>/summary.json                       per domain/split ("source/all", "target/train", "target/val"):
                                             images, pixels, void_fraction, class_pixel_fraction (share
                                             of the labelled pixels), class_image_fraction (share of the
                                             images that contain the class); and the Layout/Style data
    <out>/preview.png                        a few images of each domain beside their colourised labels

Every image has its own random generator, seeded from (seed, domain, split, index), so an image does not
depend on how many others are generated or in what order. The per-class colour offsets of each style
are fixed (not seeded): the size of the gap is a property of the benchmark, the seed varies the scenes.

Calibration (bench/probe_gap.py: a 4-layer FCN trained 600 iterations from scratch at 128x256, scored on
target val; default sizes): source-only 22.6-24.0 mIoU, source with FDA 23.4, target-supervised oracle
51.1-55.3, over two data seeds and two training seeds. The knobs are the Style and Layout tables.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from cityscapesscripts.helpers.labels import labels as CS_LABELS
from PIL import Image
from tqdm import tqdm

from uplr.data import _scenes
from uplr.errors import UplrError
from uplr.io import atomic_dir

log = logging.getLogger(__name__)

TRAIN_CITIES = ("aldham", "brennport", "corvale", "dunmere")
VAL_CITIES = ("eastwick", "fernholt")
FRAME = 19  # Cityscapes' annotated frame number within a sequence
DOMAIN_KEYS = {"source": 0, "target": 1}
SPLIT_KEYS = {"all": 0, "train": 1, "val": 2}

_TRAIN = sorted(
    (lab for lab in CS_LABELS if 0 <= lab.trainId < 19 and not lab.ignoreInEval), key=lambda lab: lab.trainId
)
CLASSES: tuple[str, ...] = tuple(lab.name for lab in _TRAIN)
_ID_TO_TRAIN = np.full(256, 255, np.uint8)
for _lab in _TRAIN:
    _ID_TO_TRAIN[_lab.id] = _lab.trainId
MAX_LABEL_ID = max(lab.id for lab in CS_LABELS)
_ID_COLOUR = {lab.id: lab.color for lab in CS_LABELS}
PALETTE: list[int] = [c for i in [*range(MAX_LABEL_ID + 1), -1] for c in _ID_COLOUR[i]]
"""The GTA5 label palette, flattened: Cityscapes colours of labelIds 0..33, then (34) license plate's."""


def image_rng(seed: int, domain: str, split: str, index: int) -> np.random.Generator:
    """The generator of one image: a SeedSequence child keyed by (domain, split, index)."""
    return np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(DOMAIN_KEYS[domain], SPLIT_KEYS[split], index))
    )


def make_sample(
    seed: int, domain: str, split: str, index: int, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 HxWx3, labelIds uint8 HxW) of one image; index is 0-based."""
    rng = image_rng(seed, domain, split, index)
    scene = _scenes.draw_scene(rng, height, width, _scenes.LAYOUTS[domain])
    image = _scenes.render(scene, rng, _scenes.STYLES[domain])
    return image, scene.labels


def source_name(index: int) -> str:
    """GTA5 file name of the 0-based source image ``index`` (numbering starts at 00001)."""
    return f"{index + 1:05d}.png"


def target_stem(split: str, index: int) -> str:
    """``<city>/<city>_<seq:06d>_<frame:06d>`` of a target image; cities are assigned round robin."""
    cities = TRAIN_CITIES if split == "train" else VAL_CITIES
    city = cities[index % len(cities)]
    return f"{city}/{city}_{index // len(cities):06d}_{FRAME:06d}"


def _check(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise UplrError(
            f"generate.{name} must be an integer >= {minimum}, got {value!r}; "
            "fix it in the generate section of params.yaml"
        )


def _save_png(arr: np.ndarray, path: Path, mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "P":
        im = Image.frombytes("P", (arr.shape[1], arr.shape[0]), np.ascontiguousarray(arr).tobytes())
        im.putpalette(PALETTE)
    else:
        im = Image.fromarray(arr)
        if im.mode != mode:
            raise ValueError(f"expected a {mode} array for {path}, got PIL mode {im.mode}")
    # the fastest zlib level for photos (their noise hardly compresses); labels keep the default
    im.save(path, format="PNG", compress_level=1 if mode == "RGB" else 6)


class _Stats:
    """Pixel counts per labelId and per-image presence of each trainId for one domain/split."""

    def __init__(self) -> None:
        self.images = 0
        self.counts = np.zeros(256, np.int64)
        self.present = np.zeros(len(CLASSES), np.int64)

    def add(self, labels: np.ndarray) -> None:
        c = np.bincount(labels.ravel(), minlength=256)
        self.images += 1
        self.counts += c
        per_class = np.bincount(_ID_TO_TRAIN, weights=c, minlength=256)[: len(CLASSES)]
        self.present += per_class > 0

    def summary(self) -> dict[str, Any]:
        per_class = np.bincount(_ID_TO_TRAIN, weights=self.counts, minlength=256)[: len(CLASSES)]
        total = int(self.counts.sum())
        valid = float(per_class.sum())
        return {
            "images": self.images,
            "pixels": total,
            "void_fraction": round(1.0 - valid / max(total, 1), 6),
            "class_pixel_fraction": {
                n: round(float(v) / max(valid, 1.0), 6) for n, v in zip(CLASSES, per_class, strict=True)
            },
            "class_image_fraction": {
                n: round(int(v) / max(self.images, 1), 6) for n, v in zip(CLASSES, self.present, strict=True)
            },
        }


def colorize_label_ids(ids: np.ndarray) -> np.ndarray:
    """HxW labelIds -> HxWx3 Cityscapes colours (ids outside 0..33 black)."""
    lut = np.zeros((256, 3), np.uint8)
    lut[: MAX_LABEL_ID + 1] = np.asarray(PALETTE, np.uint8).reshape(-1, 3)[: MAX_LABEL_ID + 1]
    return lut[ids]


def _preview(pairs: list[list[tuple[np.ndarray, np.ndarray]]], path: Path) -> None:
    """Rows of [source image | source label | target image | target label]."""
    rows = max(len(p) for p in pairs)
    h, w = pairs[0][0][0].shape[:2]
    gap = 2
    sheet = np.full((rows * (h + gap) - gap, len(pairs) * 2 * (w + gap) - gap, 3), 255, np.uint8)
    for col, domain_pairs in enumerate(pairs):
        for row, (img, lab) in enumerate(domain_pairs):
            y, x = row * (h + gap), col * 2 * (w + gap)
            sheet[y : y + h, x : x + w] = img
            sheet[y : y + h, x + w + gap : x + 2 * w + gap] = colorize_label_ids(lab)
    Image.fromarray(sheet).save(path, format="PNG")


def generate(
    out: Path, seed: int, height: int, width: int, n_source: int, n_target_train: int, n_target_val: int
) -> dict[str, Any]:
    """Write the embedded benchmark to ``out`` (replacing it atomically) and return its summary."""
    for name, value, minimum in (
        ("seed", seed, 0),
        ("height", height, 16),
        ("width", width, 32),
        ("n_source", n_source, 1),
        ("n_target_train", n_target_train, 1),
        ("n_target_val", n_target_val, 1),
    ):
        _check(name, value, minimum)
    out = Path(out)
    jobs = [("source", "all", n_source), ("target", "train", n_target_train), ("target", "val", n_target_val)]
    stats: dict[str, _Stats] = {}
    preview: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"source": [], "target": []}
    log.info(
        "generating the embedded benchmark in %s: %d source, %d+%d target images at %dx%d (seed %d)",
        out,
        n_source,
        n_target_train,
        n_target_val,
        height,
        width,
        seed,
    )
    with (
        atomic_dir(out) as tmp,
        tqdm(
            total=n_source + n_target_train + n_target_val, desc="generate", unit="img", disable=None
        ) as bar,
    ):
        for domain, split, n in jobs:
            st = stats.setdefault(f"{domain}/{split}", _Stats())
            entries = []
            for i in range(n):
                image, labels = make_sample(seed, domain, split, i, height, width)
                st.add(labels)
                if domain == "source":
                    name = source_name(i)
                    _save_png(image, tmp / "source" / "images" / name, "RGB")
                    _save_png(labels, tmp / "source" / "labels" / name, "P")
                    entries.append(name)
                else:
                    stem = target_stem(split, i)
                    _save_png(
                        image, tmp / "target" / "leftImg8bit" / split / f"{stem}_leftImg8bit.png", "RGB"
                    )
                    _save_png(labels, tmp / "target" / "gtFine" / split / f"{stem}_gtFine_labelIds.png", "L")
                    entries.append(f"{stem}_leftImg8bit.png")
                if split in ("all", "train") and len(preview[domain]) < 3:
                    preview[domain].append((image, labels))
                bar.update(1)
            list_path = tmp / "source" / "all.txt" if domain == "source" else tmp / "target" / f"{split}.txt"
            list_path.write_text("".join(f"{e}\n" for e in sorted(entries)))
        summary = {
            "seed": int(seed),
            "height": int(height),
            "width": int(width),
            "classes": list(CLASSES),
            "splits": {k: v.summary() for k, v in stats.items()},
            "layout": {d: dataclasses.asdict(v) for d, v in _scenes.LAYOUTS.items()},
            "style": {d: dataclasses.asdict(v) for d, v in _scenes.STYLES.items()},
        }
        text = json.dumps(summary, indent=2, sort_keys=True) + "\n"
        summary = json.loads(text)  # what is returned is exactly what the file says (tuples become lists)
        (tmp / "summary.json").write_text(text)
        _preview([preview["source"], preview["target"]], tmp / "preview.png")
    log.info("embedded benchmark written to %s", out)
    return summary
