"""FDA image translation: source images take the target's low-frequency amplitude (Yang & Soatto, 2020).

Per channel: FFT, centre the spectrum (fftshift), replace the amplitude inside the centred square
window of side ``b = floor(min(H, W) * beta)`` by the target's, keep the source phase everywhere,
inverse FFT, keep the real part. A cheap stand-in for the paper's CycleGAN translation (the "+IT"
row of the ablation).
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


def fda_window_side(height: int, width: int, beta: float) -> int:
    """b = floor(min(H, W) * beta), the side of the swapped low-frequency window.

    The product is rounded to 9 decimals before the floor, so that e.g. 100 * 0.29 (28.999999999999996
    in floating point) gives 29, as written by hand.
    """
    beta = float(beta)
    if not (0.0 <= beta <= 1.0):
        raise UplrError(f"FDA beta must be in [0, 1], got {beta}")
    return int(math.floor(round(min(height, width) * beta, 9)))


def fda_window(height: int, width: int, beta: float) -> tuple[slice, slice]:
    """Rows and columns of the window in the fftshift-ed spectrum (DC at (H//2, W//2)).

    The window is ``[c - b//2, c - b//2 + b)`` on each axis: centred on DC for odd b; for even b it
    reaches one step further towards the negative frequencies.
    """
    b = fda_window_side(height, width, beta)
    ch, cw = height // 2, width // 2
    return slice(ch - b // 2, ch - b // 2 + b), slice(cw - b // 2, cw - b // 2 + b)


def fda_source_to_target(src: np.ndarray, trg: np.ndarray, beta: float) -> np.ndarray:
    """Source content with the target's low-frequency amplitude; float64 H x W x channels (or H x W).

    Inside the centred window of side b = floor(min(H, W) * beta) (see :func:`fda_window`) the spectrum
    becomes A_trg * exp(i * phase_src); outside it is untouched; the real part of the inverse FFT is
    returned, unclipped. beta = 0 gives b = 0: the image comes back unchanged (to float precision).

    Differences from FDA's own code, on purpose: there ``b`` is a half-width (the window is 2b + 1
    wide, so even beta = 0 swaps the DC term, i.e. the mean colour); here, as our issue specifies,
    b is the window's side. For odd b the window is symmetric about DC, the swapped spectrum is
    Hermitian and the output is exactly real. For even b it is not symmetric; keeping the real part
    then projects the spectrum back to a Hermitian one: a frequency whose mirror -f is also in the
    window gets the target amplitude, one with exactly one of f, -f in the window gets the mean of
    the two amplitudes, all others keep the source's. The phase is the source's everywhere in both cases.
    A source coefficient of amplitude 0 inside the window has no phase; it is given phase 0.
    """
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
    rows, cols = fda_window(h, w, beta)
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


def fda_uint8(src_u8: np.ndarray, trg_u8: np.ndarray, beta: float) -> np.ndarray:
    """FDA on uint8 H x W x 3 images: the target is resized to the source size (bilinear, PIL), the
    result is rounded and clipped to [0, 255]."""
    src_u8, trg_u8 = np.asarray(src_u8), np.asarray(trg_u8)
    for name, img in (("source", src_u8), ("target", trg_u8)):
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise UplrError(
                f"fda_uint8: the {name} image must be uint8 H x W x 3, got {img.dtype} {img.shape}"
            )
    trg_u8 = _resize_like(trg_u8, src_u8.shape[0], src_u8.shape[1])
    out = fda_source_to_target(src_u8, trg_u8, beta)
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


def _translate_one(job: tuple[str, str, str, float]) -> None:
    src, trg, out, beta = job
    src_rgb = _read_rgb(Path(src))
    h, w = src_rgb.shape[:2]
    if beta > 0 and fda_window_side(h, w, beta) == 0:
        raise UplrError(
            f"FDA: translate.beta={beta:g} gives a window of floor(min({h}, {w}) * {beta:g}) = 0 pixels for "
            f"{src}, so the translated set would equal the source; raise translate.beta to at least "
            f"{1.0 / min(h, w):.4g} (or set it to 0 to copy the images on purpose)"
        )
    result = fda_uint8(src_rgb, _read_rgb(Path(trg)), beta)
    with atomic_path(out) as tmp:
        Image.fromarray(result).save(tmp, format="PNG")


def translate_files(
    src_paths: Sequence[str | Path],
    trg_paths: Sequence[str | Path],
    out_paths: Sequence[str | Path],
    beta: float,
    seed: int,
    workers: int = 1,
) -> np.ndarray:
    """Write ``out_paths[j]`` = FDA of ``src_paths[j]`` in the style of ``trg_paths[style[j]]`` as PNG.

    ``style`` = :func:`pick_style_images` (len(src), len(trg), seed) is returned, so the caller can
    record which target image styled which source image. Each file is written atomically; ``workers``
    > 1 spreads the images over ``spawn``-ed processes (the result does not depend on it).
    """
    if len(src_paths) != len(out_paths):
        raise UplrError(
            f"FDA: {len(src_paths)} source images but {len(out_paths)} output paths; they must pair up"
        )
    fda_window_side(1, 1, beta)  # validate beta before any work
    style = pick_style_images(len(src_paths), len(trg_paths), seed)
    jobs = [
        (str(s), str(trg_paths[t]), str(o), float(beta))
        for s, t, o in zip(src_paths, style, out_paths, strict=True)
    ]
    bar = dict(total=len(jobs), desc="FDA", unit="img", disable=None)
    if workers <= 1:
        for job in tqdm(jobs, **bar):
            _translate_one(job)
    else:
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn")
        ) as pool:
            for _ in tqdm(pool.map(_translate_one, jobs, chunksize=8), **bar):
                pass
    log.info("FDA: translated %d images (beta=%g, seed=%d)", len(jobs), beta, seed)
    return style
