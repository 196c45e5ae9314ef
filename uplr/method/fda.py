"""FDA image translation: source images take the target's low-frequency amplitude (Yang & Soatto, 2020).

Per channel: FFT, centre the spectrum (fftshift), replace the amplitude inside a centred low-frequency
window by the target's, keep the source phase everywhere, inverse FFT, keep the real part. A cheap
stand-in for the paper's CycleGAN translation (the "+IT" row of the ablation).

Two window conventions (``translate.window``), both with b = floor(min(H, W) * beta):

* ``fda`` (default): FDA's own. b is a *half-width*: the window holds the frequencies
  -b..b on each axis, a (2b + 1) x (2b + 1) square centred on DC (DC included, so b = 0 still swaps the
  DC term, i.e. each channel's mean). This is the window of FDA's numpy routine ``low_freq_mutate_np``
  (shifted rows floor(H/2) - b .. floor(H/2) + b), so ``beta = 0.01`` means what it means in the FDA
  papers. [source: the routine as found in public copies of FDA's code via code search; not checked
  against the original repository at a pinned commit.] FDA's PyTorch training code (same source) swaps
  b x b corner blocks of the unshifted rfft amplitude instead (rows: frequencies -b..b-1, so +b is left
  out); we do not follow that variant.
  Where 2b + 1 exceeds a side, the window is clipped to the frequencies that exist (FDA's slicing would
  go wrong there; beta that large is not a low-frequency swap anyway).
* ``floor`` (this suite's earlier convention): b is the window's *side*: a b x b square at
  [c - b//2, c - b//2 + b) around the shifted DC index c; b = 0 swaps nothing. For the same beta this
  window is about half as wide as FDA's.

"A beta > 0 that swaps nothing is an error" (:func:`translate_files`): with ``floor`` that is b = 0.
With ``fda`` the window always holds DC, so it never swaps nothing; b = 0 (beta < 1 / min(H, W)) swaps
only each channel's mean colour. We count that as a translation — it is what FDA's own code does at
that size, and ``floor`` with b = 1 (also DC only) was accepted before — but :func:`translate_files`
logs a warning naming the beta that would give a real window (b >= 1).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from uplr.errors import UplrError
from uplr.io import atomic_path

log = logging.getLogger(__name__)


#: ``translate.window`` values: FDA's own centred (2b+1)-wide window, or this suite's earlier b-wide one.
WINDOWS = ("fda", "floor")


def _check_window(window: str) -> str:
    if window not in WINDOWS:
        raise UplrError(f"translate.window must be one of {', '.join(WINDOWS)}, got {window!r}")
    return window


def fda_b(height: int, width: int, beta: float) -> int:
    """b = floor(min(H, W) * beta): FDA's half-width (window ``fda``) or the window's side (``floor``).

    The product is rounded to 9 decimals before the floor, so that e.g. 100 * 0.29 (28.999999999999996
    in floating point) gives 29, as written by hand.
    """
    beta = float(beta)
    if not (0.0 <= beta <= 1.0):
        raise UplrError(f"FDA beta must be in [0, 1], got {beta}")
    return int(math.floor(round(min(height, width) * beta, 9)))


def fda_window_side(height: int, width: int, beta: float) -> int:
    """The ``floor`` window's side, b = floor(min(H, W) * beta) (see :func:`fda_b`)."""
    return fda_b(height, width, beta)


def fda_window(height: int, width: int, beta: float, window: str = "fda") -> tuple[slice, slice]:
    """Rows and columns of the swapped window in the fftshift-ed spectrum (DC at (H//2, W//2)).

    With b = :func:`fda_b`:

    * ``fda``: ``[c - b, c + b + 1)`` on each axis (c = the DC index, floor(N/2)), i.e. the signed
      frequencies -b..b, clipped to ``[0, N)``; never empty (b = 0 is DC alone);
    * ``floor``: ``[c - b//2, c - b//2 + b)``: centred on DC for odd b; for even b it reaches one step
      further towards the negative frequencies; empty for b = 0.
    """
    b = fda_b(height, width, beta)
    ch, cw = height // 2, width // 2
    if _check_window(window) == "fda":
        return (slice(max(0, ch - b), min(height, ch + b + 1)), slice(max(0, cw - b), min(width, cw + b + 1)))
    return slice(ch - b // 2, ch - b // 2 + b), slice(cw - b // 2, cw - b // 2 + b)


def fda_source_to_target(src: np.ndarray, trg: np.ndarray, beta: float, window: str = "fda") -> np.ndarray:
    """Source content with the target's low-frequency amplitude; float64 H x W x channels (or H x W).

    Inside the window of :func:`fda_window` the spectrum becomes A_trg * exp(i * phase_src); outside it
    is untouched; the real part of the inverse FFT is returned, unclipped.

    * ``window="fda"`` (FDA's convention): the window is symmetric about DC (frequencies -b..b), so the
      swapped spectrum stays Hermitian and the output is real up to rounding. b = 0 swaps DC alone:
      each channel's mean becomes the target's, nothing else moves.
    * ``window="floor"``: beta = 0 (b = 0) gives the image back unchanged (to float precision). For odd b
      the window is symmetric about DC and the output is exactly real. For even b it is not symmetric;
      keeping the real part then projects the spectrum back to a Hermitian one: a frequency whose mirror
      -f is also in the window gets the target amplitude, one with exactly one of f, -f in the window gets
      the mean of the two amplitudes, all others keep the source's.

    The phase is the source's everywhere. A source coefficient of amplitude 0 inside the window has no
    phase; it is given phase 0.
    """
    _check_window(window)
    src = np.asarray(src, dtype=np.float64)
    trg = np.asarray(trg, dtype=np.float64)
    if src.ndim not in (2, 3):
        raise UplrError(f"FDA: the source image must be H x W x C or H x W, got shape {src.shape}")
    if src.shape != trg.shape:
        raise UplrError(
            f"FDA: source shape {src.shape} and target shape {trg.shape} differ; resize the target "
            "first (fda_uint8 does)"
        )
    h, w = src.shape[:2]
    rows, cols = fda_window(h, w, beta, window)
    if rows.stop - rows.start == 0:
        return src.copy()
    spec_src = np.fft.fftshift(np.fft.fft2(src, axes=(0, 1)), axes=(0, 1))
    spec_trg = np.fft.fftshift(np.fft.fft2(trg, axes=(0, 1)), axes=(0, 1))
    spec_src[rows, cols] = np.abs(spec_trg[rows, cols]) * np.exp(1j * np.angle(spec_src[rows, cols]))
    out = np.fft.ifft2(np.fft.ifftshift(spec_src, axes=(0, 1)), axes=(0, 1))
    return np.real(out)


def _resize_like(trg_u8: np.ndarray, height: int, width: int) -> np.ndarray:
    if trg_u8.shape[:2] == (height, width):
        return trg_u8
    return np.asarray(Image.fromarray(trg_u8).resize((width, height), Image.BILINEAR))


def fda_uint8(src_u8: np.ndarray, trg_u8: np.ndarray, beta: float, window: str = "fda") -> np.ndarray:
    """FDA on uint8 H x W x 3 images: the target is resized to the source size (bilinear, PIL), the
    result is rounded and clipped to [0, 255]. ``window``: see :func:`fda_window`."""
    src_u8, trg_u8 = np.asarray(src_u8), np.asarray(trg_u8)
    for name, img in (("source", src_u8), ("target", trg_u8)):
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise UplrError(
                f"fda_uint8: the {name} image must be uint8 H x W x 3, got {img.dtype} {img.shape}"
            )
    trg_u8 = _resize_like(trg_u8, src_u8.shape[0], src_u8.shape[1])
    out = fda_source_to_target(src_u8, trg_u8, beta, window)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def pick_style_images(n_source: int, n_target: int, seed: int) -> np.ndarray:
    """For each source image, the index of the target image whose style it takes (int64, length n_source).

    Uniform with replacement from ``numpy.random.default_rng(seed)``: the same seed (and the same
    target list order) gives the same choice.
    """
    if n_target < 1:
        raise UplrError("FDA: the target image list is empty; nothing to take the style from")
    if n_source < 0:
        raise UplrError(f"FDA: n_source must be >= 0, got {n_source}")
    return np.random.default_rng(seed).integers(0, n_target, size=n_source, dtype=np.int64)


def _read_rgb(path: Path) -> np.ndarray:
    if not path.is_file():
        raise UplrError(f"FDA: image {path} does not exist; check the dataset root and split list")
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _translate_one(job: tuple[str, str, str, float, str]) -> int:
    """Translate one file; returns b (:func:`fda_b`) for the image's size."""
    src, trg, out, beta, window = job
    src_rgb = _read_rgb(Path(src))
    h, w = src_rgb.shape[:2]
    b = fda_b(h, w, beta)
    if window == "floor" and beta > 0 and b == 0:
        raise UplrError(
            f"FDA: translate.beta={beta:g} gives a window of floor(min({h}, {w}) * {beta:g}) = 0 pixels for "
            f"{src} (translate.window: floor), so the translated set would equal the source; raise "
            f"translate.beta to at least {1.0 / min(h, w):.4g} (or set it to 0 to copy the images on purpose)"
        )
    result = fda_uint8(src_rgb, _read_rgb(Path(trg)), beta, window)
    with atomic_path(out) as tmp:
        Image.fromarray(result).save(tmp, format="PNG")
    return b


def translate_files(
    src_paths: Sequence[str | Path],
    trg_paths: Sequence[str | Path],
    out_paths: Sequence[str | Path],
    beta: float,
    seed: int,
    workers: int = 1,
    window: str = "fda",
) -> np.ndarray:
    """Write ``out_paths[j]`` = FDA of ``src_paths[j]`` in the style of ``trg_paths[style[j]]`` as PNG.

    ``style`` = :func:`pick_style_images` (len(src), len(trg), seed) is returned, so the caller can
    record which target image styled which source image. Each file is written atomically; ``workers``
    > 1 spreads the images over ``spawn``-ed processes (the result does not depend on it).

    ``window`` (:func:`fda_window`): with ``floor``, a beta > 0 whose window is empty for an image is an
    error (the copy would equal the source). With ``fda`` the window always holds DC; images where
    b = 0 (only the mean colour moves) are counted and a warning names the beta that gives b >= 1.
    """
    if len(src_paths) != len(out_paths):
        raise UplrError(
            f"FDA: {len(src_paths)} source images but {len(out_paths)} output paths; they must pair up"
        )
    fda_b(1, 1, beta)  # validate beta and window before any work
    _check_window(window)
    style = pick_style_images(len(src_paths), len(trg_paths), seed)
    jobs = [
        (str(s), str(trg_paths[t]), str(o), float(beta), window)
        for s, t, o in zip(src_paths, style, out_paths, strict=True)
    ]
    bar = dict(total=len(jobs), desc="FDA", unit="img", disable=None)
    dc_only = 0
    if workers <= 1:
        for job in tqdm(jobs, **bar):
            dc_only += _translate_one(job) == 0
    else:
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn")
        ) as pool:
            for b in tqdm(pool.map(_translate_one, jobs, chunksize=8), **bar):
                dc_only += b == 0
    if window == "fda" and dc_only:
        log.warning(
            "FDA: for %d of %d images b = floor(min(H, W) * %g) = 0: the window is the DC term alone, only "
            "the mean colour is transferred; b >= 1 needs beta >= 1 / min(H, W)", dc_only, len(jobs), beta
        )
    log.info("FDA: translated %d images (beta=%g, window=%s, seed=%d)", len(jobs), beta, window, seed)
    return style
