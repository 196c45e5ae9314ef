"""Dataset files: decoding, header checks and list files, each error naming the file and the fix.

The dataset classes (:mod:`uplr.data.datasets`) read their frames through these functions;
``uplr data check`` (:mod:`uplr.data.check`) uses the same ones to report every problem. Nothing here
knows a dataset's layout: a :class:`Frame` is a list entry plus the paths of its files.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from uplr.errors import UplrError

IMG_MEAN = np.array((104.00698793, 116.66876762, 122.67891434), dtype=np.float32)
"""Per-channel mean in BGR order (ADVENT/AdaptSegNet/BDL), subtracted from 0..255 pixel values."""

REDOWNLOAD = "re-download or re-extract it from the official archive"
_SCAN_THREADS = 8


class DataFileError(UplrError):
    """A dataset file that is missing, unreadable, of the wrong format or holds invalid label values.

    ``kind`` is one of ``missing_image``, ``missing_label``, ``unreadable_image``, ``unreadable_label``,
    ``size_mismatch``, ``bad_label_format``, ``bad_label_values`` (``unknown`` when the error was re-built
    from its message alone, as torch does for an error raised in a DataLoader worker).
    """

    def __init__(self, kind: str, path: Path | None = None, message: str | None = None) -> None:
        if message is None:  # DataFileError(message): re-raised from a DataLoader worker
            kind, message = "unknown", kind
        super().__init__(message)
        self.kind = kind
        self.path = path


@dataclass(frozen=True)
class Frame:
    """One listed frame: its name (the list entry) and the files that hold it."""

    name: str
    image: Path
    label: Path | None  # None: the split has no labels (NTHU train)


# ----------------------------------------------------------------------------------------------------
# image preprocessing


def normalize(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 RGB -> float32 3xHxW tensor: BGR order minus :data:`IMG_MEAN`, no division."""
    bgr = np.asarray(rgb, dtype=np.float32)[:, :, ::-1] - IMG_MEAN
    return torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1)))


def denormalize(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """Undo :func:`normalize` for viewing: (..., 3, H, W) BGR-minus-mean -> (..., H, W, 3) uint8 RGB."""
    arr = image.detach().float().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim < 3 or arr.shape[-3] != 3:
        raise ValueError(f"denormalize expects (..., 3, H, W), got shape {arr.shape}")
    bgr = np.moveaxis(arr.astype(np.float32), -3, -1) + IMG_MEAN
    return np.clip(np.rint(bgr[..., ::-1]), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------
# file readers (all errors name the file and the fix)


def header_size(path: Path, kind: str) -> tuple[int, int]:
    """(width, height) from the file header only; ``kind`` is ``image`` or ``label`` (for the error)."""
    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise DataFileError(f"missing_{kind}", path, f"{kind} file {path} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataFileError(
            f"unreadable_{kind}", path, f"{kind} file {path} is not a readable image ({e}); {REDOWNLOAD}"
        ) from None


def load_rgb(path: Path) -> Image.Image:
    """Decode an image file fully into an RGB PIL image (a truncated file is an error)."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except FileNotFoundError:
        raise DataFileError("missing_image", path, f"image file {path} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataFileError(
            "unreadable_image", path, f"image file {path} is unreadable or truncated ({e}); {REDOWNLOAD}"
        ) from None


def read_index_png(path: Path, what: str) -> np.ndarray:
    """Raw values of an 8-bit single-channel label PNG: palette indices ('P') or gray levels ('L')."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("P", "L"):
                raise DataFileError(
                    "bad_label_format",
                    path,
                    f"label file {path} has PIL mode {im.mode!r}, but {what} labels are 8-bit single-channel "
                    f"(palette or gray) PNGs whose value is the class id; it is the wrong file or was "
                    f"converted (e.g. to colour): {REDOWNLOAD}",
                )
            return np.array(im, dtype=np.uint8)
    except FileNotFoundError:
        raise DataFileError("missing_label", path, f"label file {path} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataFileError(
            "unreadable_label", path, f"label file {path} is unreadable or truncated ({e}); {REDOWNLOAD}"
        ) from None


def check_label_values(raw: np.ndarray, path: Path, allowed: np.ndarray, what: str) -> None:
    """Raise if ``raw`` holds a value outside ``allowed`` (bool mask over raw values)."""
    counts = np.bincount(raw.ravel(), minlength=len(allowed))
    present = np.flatnonzero(counts)
    bad = present[(present >= len(allowed)) | ~allowed[np.minimum(present, len(allowed) - 1)]]
    if bad.size:
        shown = ", ".join(f"{v} ({counts[v]} px)" for v in bad[:10])
        raise DataFileError(
            "bad_label_values",
            path,
            f"label file {path} holds values outside the {what} encoding: {shown}; it is corrupt or the "
            f"wrong file (e.g. a trainId or colour image): {REDOWNLOAD}",
        )


def allowed_values(max_value: int, extra: Sequence[int] = ()) -> np.ndarray:
    mask = np.zeros(max(max_value, *extra, 0) + 1, dtype=bool)
    mask[: max_value + 1] = True
    mask[list(extra)] = True
    return mask


def resolve_size(size: Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise UplrError(f"dataset size must be [width, height] or None, got {size!r}") from None
    if w <= 0 or h <= 0:
        raise UplrError(f"dataset size must be positive [width, height], got {size!r}")
    return (w, h)


def is_list_path(split: str) -> bool:
    """True when ``split`` names a list file rather than a packaged official list."""
    return "/" in split or split.endswith(".txt")


def read_list(path: Path) -> list[str]:
    """Non-empty, stripped lines of a list file."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise UplrError(
            f"list file {path} does not exist; give an existing list file or a packaged split"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise UplrError(f"list file {path} cannot be read ({e})") from None
    entries = [ln.strip() for ln in lines if ln.strip()]
    if not entries:
        raise UplrError(f"list file {path} names no frames")
    return entries


def read_synthia_label(path: Path) -> np.ndarray:
    """The class-id channel (R) of a SYNTHIA ``GT/LABELS`` file: a 3-channel 16-bit PNG."""
    if not path.is_file():
        raise DataFileError("missing_label", path, f"label file {path} does not exist")
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise DataFileError(
            "unreadable_label", path, f"label file {path} is unreadable or truncated; {REDOWNLOAD}"
        )
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise DataFileError(
            "bad_label_format",
            path,
            f"label file {path} has shape {arr.shape}, but SYNTHIA GT/LABELS are 3-channel 16-bit PNGs "
            f"(class id in R); it is the wrong file or was converted: {REDOWNLOAD}",
        )
    return arr[:, :, 2]  # OpenCV is BGR(A): index 2 is R, which holds the class id


# ----------------------------------------------------------------------------------------------------
# header scan of many frames


def count_kinds(errors: Any) -> str:
    counts: dict[str, int] = {}
    for e in errors:
        counts[e.kind] = counts.get(e.kind, 0) + 1
    return ", ".join(f"{k}: {n}" for k, n in sorted(counts.items()))


def probe_frame(frame: Frame) -> DataFileError | None:
    """Header-level check of one frame: both files exist, are images, and have the same size."""
    try:
        isize = header_size(frame.image, "image")
        if frame.label is None:
            return None
        lsize = header_size(frame.label, "label")
    except DataFileError as e:
        return e
    if isize != lsize:
        return DataFileError(
            "size_mismatch",
            frame.label,
            f"frame {frame.name}: image {frame.image} is {isize[0]}x{isize[1]} but label {frame.label} is "
            f"{lsize[0]}x{lsize[1]}",
        )
    return None


def scan_frames(frames: Sequence[Frame], desc: str = "scan") -> dict[int, DataFileError]:
    """Probe every frame's headers (threaded, I/O bound); return {index: problem} for the bad ones."""
    with ThreadPoolExecutor(_SCAN_THREADS) as pool:
        results = list(
            tqdm(
                pool.map(probe_frame, frames),
                total=len(frames),
                desc=desc,
                disable=len(frames) < 2000,
                leave=False,
            )
        )
    return {i: r for i, r in enumerate(results) if r is not None}
