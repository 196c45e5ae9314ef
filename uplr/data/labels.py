"""Label tables: every dataset is mapped into the 19 Cityscapes trainIds (255 = ignore).

The Cityscapes tables are built from ``cityscapesscripts.helpers.labels`` (the official definition),
not retyped. SYNTHIA is not part of cityscapesscripts, so its id table follows
``tests/fixtures/LABEL_ENCODINGS.md``. The 16- and 13-class SYNTHIA protocols and the 13 NTHU
classes are subsets of the 19-trainId space, so one model output serves every protocol.
"""

from __future__ import annotations

import functools

import numpy as np
from cityscapesscripts.helpers.labels import labels as _CS_LABELS

from uplr.errors import UplrError

IGNORE_LABEL = 255
"""The label value that marks an unlabelled / ignored pixel, in every trainId map (the one definition)."""
IGNORE = IGNORE_LABEL  # short alias used inside uplr/data
NUM_CLASSES = 19

# Cityscapes labels that are scored (trainId 0..18), in trainId order.
_TRAIN_LABELS = sorted(
    (lab for lab in _CS_LABELS if not lab.ignoreInEval and 0 <= lab.trainId < NUM_CLASSES),
    key=lambda lab: lab.trainId,
)
if [lab.trainId for lab in _TRAIN_LABELS] != list(range(NUM_CLASSES)):  # pragma: no cover - library sanity
    raise RuntimeError("cityscapesscripts does not define exactly 19 scored trainIds")

CLASSES_19: tuple[str, ...] = tuple(lab.name for lab in _TRAIN_LABELS)
"""Names of the 19 Cityscapes train classes, index = trainId."""

PALETTE: tuple[tuple[int, int, int], ...] = tuple(tuple(lab.color) for lab in _TRAIN_LABELS)
"""Cityscapes RGB colour of each trainId (for visualisation); ignore is drawn black."""

# Largest valid Cityscapes labelId (license plate, id -1, never appears in labelIds images).
MAX_LABEL_ID = max(lab.id for lab in _CS_LABELS)


@functools.cache
def _labelid_lut() -> np.ndarray:
    lut = np.full(256, IGNORE, dtype=np.uint8)
    for lab in _TRAIN_LABELS:
        lut[lab.id] = lab.trainId
    lut.setflags(write=False)
    return lut


def labelid_to_trainid_lut() -> np.ndarray:
    """uint8[256]: Cityscapes labelId -> trainId; every other value (void ids, >33) -> 255."""
    return _labelid_lut().copy()


def trainid_to_labelid() -> np.ndarray:
    """uint8[256]: trainId -> Cityscapes labelId (for submission-format output); 255 and others -> 0."""
    out = np.zeros(256, dtype=np.uint8)
    for lab in _TRAIN_LABELS:
        out[lab.trainId] = lab.id
    return out


def colorize(trainids: np.ndarray) -> np.ndarray:
    """HxW trainIds -> HxWx3 uint8 RGB with the Cityscapes palette (ignore and unknown ids black)."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(PALETTE)] = np.asarray(PALETTE, dtype=np.uint8)
    return lut[np.asarray(trainids).astype(np.intp).clip(0, len(lut) - 1)]


# ----------------------------------------------------------------------------------------------------
# class subsets (evaluation protocols), all in trainId space

SUBSETS: dict[str, tuple[int, ...]] = {
    "19": tuple(range(NUM_CLASSES)),
    # SYNTHIA 16: no terrain (9), truck (14), train (16)
    "16": (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18),
    # SYNTHIA mIoU*: the 16 minus wall (3), fence (4), pole (5)
    "13": (0, 1, 2, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18),
    # NTHU Cross-City: road, sidewalk, building, light, sign, vegetation, sky, person, rider, car, bus,
    # motorcycle, bicycle
    "nthu13": (0, 1, 2, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18),
}


def subset(name: str) -> tuple[int, ...]:
    """The trainIds scored under a class protocol: ``19``, ``16``, ``13`` or ``nthu13``."""
    try:
        return SUBSETS[str(name)]
    except KeyError:
        raise UplrError(
            f"unknown class subset {name!r}; valid subsets are {', '.join(sorted(SUBSETS))}"
        ) from None


# ----------------------------------------------------------------------------------------------------
# SYNTHIA-RAND-CITYSCAPES (class id in the R channel of GT/LABELS/*.png)

SYNTHIA_CLASSES: tuple[str, ...] = (
    "void",
    "sky",
    "building",
    "road",
    "sidewalk",
    "fence",
    "vegetation",
    "pole",
    "car",
    "traffic sign",
    "pedestrian",
    "bicycle",
    "motorcycle",
    "parking-slot",
    "road-work",
    "traffic light",
    "terrain",
    "rider",
    "truck",
    "bus",
    "train",
    "wall",
    "lanemarking",
)
"""SYNTHIA class names, index = SYNTHIA class id (0..22)."""

# SYNTHIA class name -> Cityscapes class name where the classes correspond.
_SYNTHIA_TO_CS_NAME = {
    "sky": "sky",
    "building": "building",
    "road": "road",
    "sidewalk": "sidewalk",
    "fence": "fence",
    "vegetation": "vegetation",
    "pole": "pole",
    "car": "car",
    "traffic sign": "traffic sign",
    "pedestrian": "person",
    "bicycle": "bicycle",
    "motorcycle": "motorcycle",
    "traffic light": "traffic light",
    "terrain": "terrain",
    "rider": "rider",
    "truck": "truck",
    "bus": "bus",
    "train": "train",
    "wall": "wall",
}

SYNTHIA_MAX_ID = len(SYNTHIA_CLASSES) - 1


def synthia_to_trainid_lut() -> np.ndarray:
    """uint8[256]: SYNTHIA class id -> Cityscapes trainId (void, parking, road-work, lanemarking -> 255)."""
    lut = np.full(256, IGNORE, dtype=np.uint8)
    for sid, sname in enumerate(SYNTHIA_CLASSES):
        cs = _SYNTHIA_TO_CS_NAME.get(sname)
        if cs is not None:
            lut[sid] = CLASSES_19.index(cs)
    return lut


# ----------------------------------------------------------------------------------------------------
# NTHU Cross-City (_eval.png holds Cityscapes labelIds; 13 classes are labelled)


def nthu_labelid_to_trainid_lut() -> np.ndarray:
    """uint8[256]: Cityscapes labelId -> trainId, keeping only the 13 NTHU classes (others -> 255)."""
    lut = labelid_to_trainid_lut()
    keep = np.zeros(256, dtype=bool)
    keep[list(SUBSETS["nthu13"])] = True
    return np.where(keep[lut], lut, IGNORE).astype(np.uint8)
