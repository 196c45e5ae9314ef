"""Loaders for GTA5, SYNTHIA-RAND-CITYSCAPES, Cityscapes and NTHU Cross-City in their real on-disk formats.

Every loader maps labels into the 19 Cityscapes trainIds (255 = ignore; see :mod:`uplr.data.labels`)
and preprocesses images the ADVENT/AdaptSegNet way (RGB -> BGR, minus :data:`IMG_MEAN`, no scaling),
so that init weights and checkpoints published by those projects work unchanged.

A dataset is a root folder plus a list of frames: either an official list packaged in
``uplr/data/lists/<dataset>/`` (``split="val"``) or, when ``split`` contains ``/`` or ends in ``.txt``,
a list file in the same line format (relative paths resolve against the current directory).

Building a dataset checks the listed files from their PNG/JPEG headers only (existence and
image/label size agreement), never their pixels. GTA5 lists 24,966 frames of which 25 are unusable;
those are skipped with one warning (``strict=True``: an error). Any other dataset with a missing or
mismatched frame is an error; ``uplr data check`` (:mod:`uplr.data.check`) lists every problem.

Longer than 400 lines because each of the four datasets' loaders documents its on-disk layout
next to its code (file decoding and checks live in uplr/data/files.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from uplr.data import labels as L
from uplr.data.files import (  # noqa: F401 - re-exported: callers import the file helpers from here too
    IMG_MEAN,
    REDOWNLOAD,
    DataFileError,
    Frame,
    allowed_values,
    check_label_values,
    count_kinds,
    denormalize,
    header_size,
    is_list_path,
    load_rgb,
    normalize,
    probe_frame,
    read_index_png,
    read_list,
    read_synthia_label,
    resolve_size,
    scan_frames,
)
from uplr.errors import UplrError

log = logging.getLogger(__name__)

LISTS_DIR = Path(__file__).resolve().parent / "lists"

GTA5_KNOWN_UNUSABLE = 25
"""GTA5 lists 24,966 frames but only 24,941 image/label pairs are usable."""

LABEL_SIZES = ("image", "native")


# ----------------------------------------------------------------------------------------------------
# base class


class SegDataset(torch.utils.data.Dataset):
    """Frames of one dataset split; items are dicts ``image``, ``label``, ``name``, ``index``.

    ``size``: (width, height) to resize to (image bilinear, label nearest), None = native size.
    ``label_size``: ``"image"`` resizes the label with the image; ``"native"`` keeps it at its original
    resolution (for evaluation: upsample the prediction to the label instead).
    ``strict``: GTA5 only tolerates unusable frames; with ``strict=True`` they are an error too.
    ``verify=False`` skips the header scan at construction (``uplr data check`` reports problems itself).
    ``split``: a name from :attr:`splits` (default: the first) or a list file's path.
    """

    key: ClassVar[str] = ""  # name in build_dataset and in uplr/data/lists/
    title: ClassVar[str] = ""
    layout: ClassVar[str] = ""  # expected on-disk layout, for error messages
    splits: ClassVar[tuple[str, ...]] = ()
    tolerate_unusable: ClassVar[bool] = False
    label_encoding: ClassVar[str] = ""
    label_allowed: ClassVar[np.ndarray] = allowed_values(0)

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        size: Sequence[int] | None = None,
        strict: bool = False,
        label_size: str = "image",
        verify: bool = True,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise UplrError(
                f"{self.title} root {self.root} does not exist or is not a folder; "
                f"expected layout:\n{self.layout}"
            )
        if label_size not in LABEL_SIZES:
            raise UplrError(f"label_size must be one of {', '.join(LABEL_SIZES)}, got {label_size!r}")
        self.split = str(self.splits[0] if split is None else split)
        self.size = resolve_size(size)
        self.label_size = label_size
        self.strict = strict
        self.list_path = self._list_path(self.split)
        self.listed: list[Frame] = [self._frame(e) for e in read_list(self.list_path)]
        self.skipped: list[tuple[Frame, DataFileError]] = []
        self.frames: list[Frame] = list(self.listed)
        if verify:
            self._verify()

    # --- subclass hooks -------------------------------------------------------------------------

    def _packaged_list(self, split: str) -> Path:
        return LISTS_DIR / self.key / f"{split}.txt"

    def _frame(self, entry: str) -> Frame:
        raise NotImplementedError

    def _read_raw_label(self, path: Path) -> np.ndarray:
        return read_index_png(path, self.title)

    def _raw_to_trainid(self, raw: np.ndarray) -> np.ndarray:
        return L.labelid_to_trainid_lut()[raw]

    # --- listing --------------------------------------------------------------------------------

    def _list_path(self, split: str) -> Path:
        if is_list_path(split):
            return Path(split)
        if split not in self.splits:
            raise UplrError(
                f"unknown {self.title} split {split!r}; packaged splits are {', '.join(self.splits)}, "
                f"or give a path to a list file (containing '/' or ending in .txt)"
            )
        return self._packaged_list(split)

    def _verify(self) -> None:
        """Header-only scan: drop (GTA5) or refuse frames whose files are missing or disagree in size."""
        issues = scan_frames(self.listed, desc=f"scan {self.key} list")
        if not issues:
            return
        fatal = {i: e for i, e in issues.items() if not e.kind.startswith("missing_") and e.kind != "size_mismatch"}
        if fatal:  # not an image at all: a corrupt file, never tolerated
            raise next(iter(fatal.values()))
        bad = sorted(issues)
        first = ", ".join(self.listed[i].name for i in bad[:5])
        kinds = count_kinds(issues.values())
        if self.tolerate_unusable and not self.strict:
            self.skipped = [(self.listed[i], issues[i]) for i in bad]
            drop = set(bad)
            self.frames = [f for i, f in enumerate(self.listed) if i not in drop]
            log.warning("%s %s: skipping %d of %d listed frames that are unusable (%s; first: %s). The official "
                        "release has %d such frames; more means an incomplete copy: run `uplr data check %s --root "
                        "%s` (exit status 3: frames skipped); strict: true makes them an error.", self.title,
                        self.list_path, len(bad), len(self.listed), kinds, first, GTA5_KNOWN_UNUSABLE, self.key,
                        self.root)
            if not self.frames:
                raise UplrError(f"{self.title} {self.list_path}: no usable frame under {self.root}")
            return
        details = "; ".join(str(issues[i]) for i in bad[:5])
        raise UplrError(
            f"{self.title} {self.list_path}: {len(bad)} of {len(self.listed)} listed frames "
            f"under {self.root} are "
            f"unusable ({kinds}): {details}{' ...' if len(bad) > 5 else ''}. Re-download/re-extract the "
            f"missing files (run `uplr data check {self.key} --root {self.root}` for the full list)"
            + ("" if not self.tolerate_unusable else ", or use strict=False to skip them")
        )

    # --- per-frame access -----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.frames]

    @property
    def has_labels(self) -> bool:
        return all(f.label is not None for f in self.frames)

    def image_path(self, i: int) -> Path:
        return self.frames[i].image

    def label_path(self, i: int) -> Path | None:
        """The label file of frame ``i``; None when the split is unlabelled."""
        return self.frames[i].label

    def read_image(self, i: int) -> Image.Image:
        """Frame ``i`` as a native-size RGB PIL image."""
        return load_rgb(self.frames[i].image)

    def read_label(self, i: int) -> np.ndarray:
        """Frame ``i``'s label as native-size uint8 trainIds (all 255 when the split has no labels)."""
        frame = self.frames[i]
        if frame.label is None:
            w, h = header_size(frame.image, "image")
            return np.full((h, w), L.IGNORE, dtype=np.uint8)
        raw = self._read_raw_label(frame.label)
        check_label_values(raw, frame.label, self.label_allowed, self.label_encoding)
        return self._raw_to_trainid(raw)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < len(self.frames):
            raise IndexError(i)
        image = self.read_image(i)
        label = self.read_label(i)
        if label.shape != (image.height, image.width) and self.label_size == "image":
            frame = self.frames[i]
            raise DataFileError(
                "size_mismatch",
                frame.label,
                f"{self.title} frame {frame.name}: image {frame.image} is {image.width}x{image.height} "
                f"but label "
                f"{frame.label} is {label.shape[1]}x{label.shape[0]}; {REDOWNLOAD}",
            )
        if self.size is not None:
            image = image.resize(self.size, Image.BILINEAR)
            if self.label_size == "image":
                label = np.asarray(Image.fromarray(label).resize(self.size, Image.NEAREST))
        return {
            "image": normalize(np.asarray(image)),
            "label": torch.from_numpy(label.astype(np.int64)),
            "name": self.frames[i].name,
            "index": i,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, frames={len(self)})"


# ----------------------------------------------------------------------------------------------------
# the four datasets


class GTA5(SegDataset):
    """GTA5 (Playing for Data): ``images/NNNNN.png``, ``labels/NNNNN.png`` (palette index = labelId)."""

    key = "gta5"
    title = "GTA5"
    layout = (
        "  <root>/images/00001.png ...  (RGB)\n  <root>/labels/00001.png ...  (palette PNG, index = labelId)"
    )
    splits = ("all", "split_train", "split_val", "split_test")
    tolerate_unusable = True
    label_encoding = "GTA5 (Cityscapes labelIds 0..33, 34 = license plate)"
    # the GTA5 palette has 35 entries: labelIds 0..33 and 34 (license plate colour); all >= 34 are ignored
    label_allowed = allowed_values(L.MAX_LABEL_ID + 1)

    def _frame(self, entry: str) -> Frame:
        name = f"{int(entry):05d}.png" if entry.isdigit() else Path(entry).name
        return Frame(name, self.root / "images" / name, self.root / "labels" / name)


class SynthiaRandCityscapes(SegDataset):
    """SYNTHIA-RAND-CITYSCAPES: ``RGB/NNNNNNN.png``; ``GT/LABELS/NNNNNNN.png`` 16-bit, class id in R."""

    key = "synthia"
    title = "SYNTHIA-RAND-CITYSCAPES"
    layout = (
        "  <root>/RGB/0000000.png ...        (RGB)\n"
        "  <root>/GT/LABELS/0000000.png ...  (3-channel 16-bit PNG, class id in the R channel)"
    )
    splits = ("all", "split_train", "split_val")
    label_encoding = f"SYNTHIA class id (0..{L.SYNTHIA_MAX_ID})"
    label_allowed = allowed_values(L.SYNTHIA_MAX_ID)

    def _frame(self, entry: str) -> Frame:
        name = f"{int(entry):07d}.png" if entry.isdigit() else Path(entry).name
        return Frame(name, self.root / "RGB" / name, self.root / "GT" / "LABELS" / name)

    def _read_raw_label(self, path: Path) -> np.ndarray:
        return read_synthia_label(path)

    def _raw_to_trainid(self, raw: np.ndarray) -> np.ndarray:
        return L.synthia_to_trainid_lut()[raw]  # values were checked to be <= 22


class Cityscapes(SegDataset):
    """Cityscapes: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png``, ``gtFine/.../*_gtFine_labelIds.png``.

    List entries are ``<city>/<name>_leftImg8bit.png`` (the folder under ``leftImg8bit`` is the split
    name; for a list file it is the last ``_`` part of its stem, e.g. ``val.txt``) or
    ``<split>/<city>/<name>_leftImg8bit.png``.
    """

    key = "cityscapes"
    title = "Cityscapes"
    layout = (
        "  <root>/leftImg8bit/{train,val}/<city>/<city>_xxxxxx_yyyyyy_leftImg8bit.png\n"
        "  <root>/gtFine/{train,val}/<city>/<city>_xxxxxx_yyyyyy_gtFine_labelIds.png"
    )
    splits = ("train", "val")
    label_encoding = "Cityscapes labelIds (0..33)"
    label_allowed = allowed_values(L.MAX_LABEL_ID)

    def _folder(self) -> str | None:
        if not is_list_path(self.split):
            return self.split
        last = self.list_path.stem.lower().rsplit("_", 1)[-1]
        return last if last in ("train", "val", "test") else None

    def _frame(self, entry: str) -> Frame:
        parts = entry.split("/")
        suffix = "_leftImg8bit.png"
        if len(parts) == 3:
            folder, city, file = parts
        elif len(parts) == 2 and self._folder() is not None:
            folder, (city, file) = self._folder(), parts
        else:
            raise UplrError(
                f"Cityscapes list {self.list_path}: entry {entry!r} must be '<city>/<name>{suffix}' "
                f"(list file "
                f"named <split>.txt) or '<split>/<city>/<name>{suffix}'"
            )
        if not file.endswith(suffix):
            raise UplrError(f"Cityscapes list {self.list_path}: entry {entry!r} does not end in {suffix}")
        stem = file[: -len(suffix)]
        return Frame(
            entry,
            self.root / "leftImg8bit" / folder / city / file,
            self.root / "gtFine" / folder / city / f"{stem}_gtFine_labelIds.png",
        )


NTHU_CITIES = ("Rio", "Rome", "Taipei", "Tokyo")


class NTHUCrossCity(SegDataset):
    """NTHU Cross-City: ``<City>/Images/{Train,Test}/<id>.jpg``; labels ``<City>/Labels/Test/<id>_eval.png``.

    Only the test split is labelled; train items get an all-255 label and ``has_labels`` is False.
    List entries are ``<id>`` (folder from the split name; for a list file the last ``_`` part of its
    stem) or ``{Train,Test}/<id>``. The 13 NTHU classes are kept, all others map to 255.
    """

    key = "nthu"
    title = "NTHU Cross-City"
    layout = (
        "  <root>/<City>/Images/Train/<id>.jpg\n"
        "  <root>/<City>/Images/Test/<id>.jpg\n"
        "  <root>/<City>/Labels/Test/<id>_eval.png   (Cityscapes labelIds)\n"
        f"  with <City> one of {', '.join(NTHU_CITIES)}"
    )
    splits = ("train", "test")
    # _eval.png holds Cityscapes labelIds; 255 (a conventional 'ignore') is tolerated as well
    label_encoding = "Cityscapes labelIds (0..33, 255)"
    label_allowed = allowed_values(L.MAX_LABEL_ID, extra=(L.IGNORE,))

    def __init__(
        self,
        root: str | Path,
        city: str,
        split: str = "test",
        size: Sequence[int] | None = None,
        strict: bool = False,
        **kw: Any,
    ) -> None:
        known = {c.lower(): c for c in NTHU_CITIES}
        city = str(city).strip()
        if not city:
            raise UplrError(f"NTHU Cross-City needs a city: one of {', '.join(NTHU_CITIES)}")
        if not is_list_path(str(split)) and city.lower() not in known:
            raise UplrError(
                f"unknown NTHU Cross-City city {city!r}; valid cities are {', '.join(NTHU_CITIES)}"
            )
        self.city = known.get(city.lower(), city)
        city_root = Path(root) / self.city
        if Path(root).is_dir() and not city_root.is_dir():
            raise UplrError(
                f"NTHU Cross-City city folder {city_root} does not exist; expected layout:\n{self.layout}"
            )
        super().__init__(root, split, size=size, strict=strict, **kw)

    def _packaged_list(self, split: str) -> Path:
        return LISTS_DIR / self.key / self.city / f"{split}.txt"

    def _folder(self) -> str | None:
        name = self.split if not is_list_path(self.split) else self.list_path.stem.lower().rsplit("_", 1)[-1]
        return {"train": "Train", "test": "Test"}.get(name.lower())

    def _frame(self, entry: str) -> Frame:
        parts = entry.split("/")
        if len(parts) == 2 and parts[0] in ("Train", "Test"):
            folder, ident = parts
        elif len(parts) == 1 and self._folder() is not None:
            folder, ident = self._folder(), entry
        else:
            raise UplrError(
                f"NTHU list {self.list_path}: entry {entry!r} must be '<id>' (list file named train.txt or "
                f"test.txt) or 'Train/<id>' / 'Test/<id>'"
            )
        ident = ident[:-4] if ident.lower().endswith(".jpg") else ident
        city_root = self.root / self.city
        label = city_root / "Labels" / "Test" / f"{ident}_eval.png" if folder == "Test" else None
        return Frame(entry, city_root / "Images" / folder / f"{ident}.jpg", label)

    def _raw_to_trainid(self, raw: np.ndarray) -> np.ndarray:
        return L.nthu_labelid_to_trainid_lut()[raw]


DATASETS: dict[str, type[SegDataset]] = {
    "gta5": GTA5,
    "synthia": SynthiaRandCityscapes,
    "cityscapes": Cityscapes,
    "nthu": NTHUCrossCity,
}


def build_dataset(
    name: str,
    root: str | Path,
    split: str,
    size: Sequence[int] | None = None,
    city: str = "",
    strict: bool = False,
    **kw: Any,
) -> SegDataset:
    """Build a dataset by name (``gta5``, ``synthia``, ``cityscapes``, ``nthu``); ``city`` is for NTHU."""
    cls = DATASETS.get(str(name).lower())
    if cls is None:
        raise UplrError(f"unknown dataset {name!r}; valid datasets are {', '.join(DATASETS)}")
    if cls is NTHUCrossCity:
        return NTHUCrossCity(root, city=city, split=split, size=size, strict=strict, **kw)
    return cls(root, split=split, size=size, strict=strict, **kw)
