"""FDA amplitude swap checked in the frequency domain with numpy's FFT, independently of fda.py."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from uplr.errors import UplrError
from uplr.method.fda import (
    fda_source_to_target,
    fda_uint8,
    fda_window_side,
    pick_style_images,
    translate_files,
)


def _spectrum(img: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.fft2(img, axes=(0, 1)), axes=(0, 1))


def _pair(h: int, w: int, seed: int = 0, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (h, w, channels) if channels else (h, w)
    return rng.uniform(0, 255, shape), rng.uniform(0, 255, shape)


def test_odd_window_swaps_amplitude_keeps_phase():
    src, trg = _pair(32, 40)
    out = fda_source_to_target(src, trg, beta=0.1, window="floor")  # b = floor(32 * 0.1) = 3
    assert out.shape == src.shape and np.isrealobj(out)
    s, t, o = _spectrum(src), _spectrum(trg), _spectrum(out)
    # DC sits at (32 // 2, 40 // 2) = (16, 20); a side-3 window is rows 15..17, columns 19..21
    inside = np.zeros((32, 40), dtype=bool)
    inside[15:18, 19:22] = True
    np.testing.assert_allclose(np.abs(o[inside]), np.abs(t[inside]), rtol=1e-6)
    np.testing.assert_allclose(np.abs(o[~inside]), np.abs(s[~inside]), rtol=1e-6, atol=1e-9 * np.abs(s).max())
    big = np.abs(s) > 1e-6 * np.abs(s).max()
    assert big.sum() > 0.9 * big.size
    phase_gap = np.abs(np.exp(1j * np.angle(o[big])) - np.exp(1j * np.angle(s[big])))
    assert phase_gap.max() < 1e-6


def test_even_window_real_part_averages_unpaired_edge():
    """b = 4 is not symmetric about DC; the real part keeps the Hermitian half of the swap (docstring)."""
    src, trg = _pair(32, 40, seed=1, channels=0)
    out = fda_source_to_target(src, trg, beta=0.125, window="floor")  # b = 4: rows 14..17, columns 18..21
    s, t, o = _spectrum(src), _spectrum(trg), _spectrum(out)
    win = np.zeros((32, 40), dtype=bool)
    win[14:18, 18:22] = True
    # frequency f at shifted index j (even N) has its mirror -f at index (N - j) mod N
    mirror = win[(32 - np.arange(32)) % 32][:, (40 - np.arange(40)) % 40]
    both, one = win & mirror, win ^ mirror
    assert both.sum() == 9 and one.sum() == 14  # 3x3 symmetric core; 7 unpaired cells + their 7 mirrors
    expected = np.where(both, np.abs(t), np.where(one, (np.abs(t) + np.abs(s)) / 2, np.abs(s)))
    np.testing.assert_allclose(np.abs(o), expected, rtol=1e-6, atol=1e-9 * np.abs(s).max())
    gap = np.abs(np.exp(1j * np.angle(o)) - np.exp(1j * np.angle(s)))
    assert gap[np.abs(s) > 1e-6 * np.abs(s).max()].max() < 1e-6


def test_floor_beta_zero_leaves_image_unchanged():
    src, trg = _pair(17, 23)
    np.testing.assert_allclose(fda_source_to_target(src, trg, 0.0, "floor"), src, rtol=0, atol=1e-9)
    # 0.05 * 17 = 0.85 -> b = 0 as well
    np.testing.assert_allclose(fda_source_to_target(src, trg, 0.05, "floor"), src, rtol=0, atol=1e-9)
    src_u8 = src.astype(np.uint8)
    assert np.array_equal(fda_uint8(src_u8, trg.astype(np.uint8), 0.0, "floor"), src_u8)


@pytest.mark.parametrize(
    ("h", "w", "beta", "side"),
    [(32, 40, 0.1, 3), (100, 120, 0.29, 29), (15, 21, 0.2, 3), (40, 33, 0.1, 3), (720, 1280, 0.01, 7)],
)
def test_floor_window_side_is_floor_min_times_beta(h, w, beta, side):
    assert fda_window_side(h, w, beta) == side
    if h * w > 20000:
        return
    src, trg = _pair(h, w, seed=2, channels=0)
    out = fda_source_to_target(src, trg, beta, "floor")
    s, o = np.abs(_spectrum(src)), np.abs(_spectrum(out))
    changed = ~np.isclose(o, s, rtol=1e-6, atol=1e-9 * s.max())
    rows, cols = np.nonzero(changed.any(axis=1))[0], np.nonzero(changed.any(axis=0))[0]
    # odd sides: a contiguous block centred on DC (h // 2, w // 2)
    assert rows.tolist() == list(range(h // 2 - side // 2, h // 2 + side // 2 + 1))
    assert cols.tolist() == list(range(w // 2 - side // 2, w // 2 + side // 2 + 1))


def test_bad_inputs():
    src, trg = _pair(8, 8)
    with pytest.raises(UplrError, match="differ"):
        fda_source_to_target(src, trg[:, :7], 0.1)
    with pytest.raises(UplrError, match="beta"):
        fda_source_to_target(src, trg, 1.5)
    with pytest.raises(UplrError, match="uint8"):
        fda_uint8(src, trg, 0.1)


def test_uint8_dc_swap_resizes_target():
    """b = 1 swaps only the DC term: every channel's mean becomes the target's, nothing else moves."""
    rng = np.random.default_rng(3)
    src = rng.integers(50, 100, (16, 16, 3), dtype=np.uint8)
    trg = np.empty((20, 30, 3), dtype=np.uint8)
    trg[:] = (200, 120, 30)  # constant, so bilinear resizing keeps it exact
    out = fda_uint8(src, trg, beta=1 / 16, window="floor")
    assert out.dtype == np.uint8 and out.shape == src.shape
    expected = src - src.mean(axis=(0, 1)) + np.array([200.0, 120.0, 30.0])
    assert np.abs(out.astype(float) - expected).max() <= 0.5 + 1e-9


def test_uint8_clips_instead_of_wrapping():
    rng = np.random.default_rng(4)
    src = rng.integers(230, 256, (16, 16, 3), dtype=np.uint8)
    trg = np.full((16, 16, 3), 255, dtype=np.uint8)
    out = fda_uint8(src, trg, beta=1 / 16, window="floor")
    expected = np.clip(src - src.mean(axis=(0, 1)) + 255.0, 0, 255)
    assert (expected == 255).any()
    assert np.abs(out.astype(float) - expected).max() <= 0.5 + 1e-9


def test_pick_style_images_deterministic():
    a, b = pick_style_images(50, 1000, seed=7), pick_style_images(50, 1000, seed=7)
    assert np.array_equal(a, b) and a.dtype == np.int64 and a.shape == (50,)
    assert not np.array_equal(a, pick_style_images(50, 1000, seed=8))
    assert a.min() >= 0 and a.max() < 1000
    assert pick_style_images(5, 1, seed=0).tolist() == [0] * 5
    with pytest.raises(UplrError, match="empty"):
        pick_style_images(5, 0, seed=0)


def _write_png(path, array):
    Image.fromarray(array).save(path)


@pytest.mark.parametrize("workers", [1, 2])
def test_translate_files(tmp_path, workers):
    rng = np.random.default_rng(5)
    srcs, trgs = [], []
    for i in range(3):
        srcs.append(tmp_path / f"src{i}.png")
        _write_png(srcs[-1], rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    for i in range(2):
        trgs.append(tmp_path / f"trg{i}.png")
        _write_png(trgs[-1], rng.integers(0, 256, (10, 10, 3), dtype=np.uint8))
    outs = [tmp_path / "out" / "sub" / f"src{i}.png" for i in range(3)]
    style = translate_files(srcs, trgs, outs, beta=0.25, seed=11, workers=workers)
    assert np.array_equal(style, pick_style_images(3, 2, seed=11))
    for src, out, j in zip(srcs, outs, style, strict=True):
        got = np.asarray(Image.open(out))
        want = fda_uint8(np.asarray(Image.open(src)), np.asarray(Image.open(trgs[j])), 0.25)
        assert np.array_equal(got, want)
    assert sorted(p.name for p in (tmp_path / "out" / "sub").iterdir()) == [
        "src0.png",
        "src1.png",
        "src2.png",
    ]
    with pytest.raises(UplrError, match="pair up"):
        translate_files(srcs, trgs, outs[:2], beta=0.25, seed=11)
    with pytest.raises(UplrError, match="does not exist"):
        translate_files([tmp_path / "missing.png"], trgs, [tmp_path / "x.png"], beta=0.25, seed=11)


def test_translate_files_refuses_a_beta_too_small_for_the_images(tmp_path):
    """window floor, 12 x 16 images and beta 0.05: floor(12 * 0.05) = 0, the 'translation' would be a copy."""
    rng = np.random.default_rng(6)
    src, trg = tmp_path / "src.png", tmp_path / "trg.png"
    _write_png(src, rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    _write_png(trg, rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    out = tmp_path / "out" / "src.png"
    with pytest.raises(UplrError, match=r"src\.png.*window: floor.*at least 0\.08333"):
        translate_files([src], [trg], [out], beta=0.05, seed=0, window="floor")
    assert not out.exists()
    # beta = 0 is a deliberate copy and stays allowed; 1/12 gives a one-pixel window (the DC term)
    translate_files([src], [trg], [out], beta=0.0, seed=0, window="floor")
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(src)))
    translate_files([src], [trg], [out], beta=1 / 12, seed=0, window="floor")
    assert not np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(src)))


def test_translate_files_fda_window_b0_moves_the_mean_colour_and_warns(tmp_path, caplog):
    """window fda, same images and beta: b = 0 is the DC term alone: a translation (the mean colour), a warning."""
    rng = np.random.default_rng(6)
    src, trg = tmp_path / "src.png", tmp_path / "trg.png"
    src_u8 = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    trg_u8 = np.full((12, 16, 3), (200, 120, 30), dtype=np.uint8)
    _write_png(src, src_u8)
    _write_png(trg, trg_u8)
    out = tmp_path / "out" / "src.png"
    with caplog.at_level("WARNING", logger="uplr.method.fda"):
        translate_files([src], [trg], [out], beta=0.05, seed=0)  # window fda is the default
    assert "1 of 1 images" in caplog.text and "DC term alone" in caplog.text
    got = np.asarray(Image.open(out)).astype(float)
    expected = np.clip(src_u8 - src_u8.mean(axis=(0, 1)) + np.array([200.0, 120.0, 30.0]), 0, 255)
    assert np.abs(got - expected).max() <= 0.5 + 1e-9
    caplog.clear()
    with caplog.at_level("WARNING", logger="uplr.method.fda"):
        translate_files([src], [trg], [out], beta=1 / 12, seed=0)  # b = 1: a 3 x 3 window, no warning
    assert "DC term alone" not in caplog.text
    with pytest.raises(UplrError, match="translate.window must be one of fda, floor"):
        translate_files([src], [trg], [out], beta=0.05, seed=0, window="centred")


# ----------------------------------------------------------------------------------------------------
# window "fda": FDA's own convention, checked against an independent derivation


def _fda_reference(src: np.ndarray, trg: np.ndarray, beta: float) -> np.ndarray:
    """FDA's convention re-derived without fftshift: in numpy's unshifted FFT, index k on an axis of length
    n is the signed frequency f = k for k <= (n - 1) // 2 and k - n above; FDA swaps the amplitude of every
    (f_y, f_x) with |f_y| <= b and |f_x| <= b, b = floor(min(H, W) * beta), and keeps the source phase."""
    h, w = src.shape[:2]
    b = int(np.floor(min(h, w) * beta + 1e-9))
    fy = np.array([k if k <= (h - 1) // 2 else k - h for k in range(h)])
    fx = np.array([k if k <= (w - 1) // 2 else k - w for k in range(w)])
    mask = (np.abs(fy)[:, None] <= b) & (np.abs(fx)[None, :] <= b)
    if src.ndim == 3:
        mask = mask[:, :, None]
    fs, ft = np.fft.fft2(src, axes=(0, 1)), np.fft.fft2(trg, axes=(0, 1))
    amp = np.where(mask, np.abs(ft), np.abs(fs))
    return np.real(np.fft.ifft2(amp * np.exp(1j * np.angle(fs)), axes=(0, 1)))


@pytest.mark.parametrize(
    ("h", "w", "beta", "b", "channels"),
    [
        (97, 129, 0.01, 0, 3),  # floor(0.97) = 0: DC alone
        (97, 129, 0.05, 4, 3),  # floor(4.85) = 4: 9 x 9
        (97, 129, 0.3, 29, 0),  # floor(29.1) = 29: 59 x 59
        (1052, 1914, 0.01, 10, 0),  # GTA5's size at FDA's beta: floor(10.52) = 10: 21 x 21 (one channel: fast)
    ],
)
def test_fda_window_matches_an_independent_derivation(h, w, beta, b, channels):
    from uplr.method.fda import fda_b, fda_window

    assert fda_b(h, w, beta) == b
    rows, cols = fda_window(h, w, beta)
    assert (rows.start, rows.stop) == (h // 2 - b, h // 2 + b + 1)
    assert (cols.start, cols.stop) == (w // 2 - b, w // 2 + b + 1)
    src, trg = _pair(h, w, seed=7, channels=channels)
    out = fda_source_to_target(src, trg, beta)
    np.testing.assert_allclose(out, _fda_reference(src, trg, beta), rtol=0, atol=1e-8)
    # exactly (2b + 1)^2 amplitudes (per channel) differ from the source's, all of them the target's
    s, t, o = (np.abs(np.fft.fft2(a, axes=(0, 1))) for a in (src, trg, out))
    changed = ~np.isclose(o, s, rtol=1e-7, atol=1e-9 * s.max())
    assert changed.sum() == (2 * b + 1) ** 2 * max(channels, 1)
    np.testing.assert_allclose(o[changed], t[changed], rtol=1e-6)


def test_fda_window_is_about_twice_as_wide_as_floor_for_the_same_beta():
    from uplr.method.fda import fda_window

    # 720 x 1280 at 0.01: b = 7; fda holds -7..7 (15 rows), floor 7 rows around DC
    rows, cols = fda_window(720, 1280, 0.01, "fda")
    assert (rows.stop - rows.start, cols.stop - cols.start) == (15, 15)
    rows, cols = fda_window(720, 1280, 0.01, "floor")
    assert (rows.stop - rows.start, cols.stop - cols.start) == (7, 7)
    # the embedded benchmark, 80 x 160: beta 0.01 -> b = 0 (DC alone), 0.0125 -> b = 1, 0.05 -> b = 4 (9 x 9)
    assert fda_window(80, 160, 0.01) == (slice(40, 41), slice(80, 81))
    assert fda_window(80, 160, 0.0125) == (slice(39, 42), slice(79, 82))
    assert fda_window(80, 160, 0.05) == (slice(36, 45), slice(76, 85))
    # beta = 1 would reach past the spectrum: clipped to the frequencies that exist (every one)
    assert fda_window(6, 9, 1.0) == (slice(0, 6), slice(0, 9))
    with pytest.raises(UplrError, match="window"):
        fda_window(6, 9, 0.1, "centred")


def test_fda_window_clipped_to_the_whole_spectrum_swaps_every_amplitude():
    src, trg = _pair(6, 9, seed=8, channels=0)
    out = fda_source_to_target(src, trg, 1.0)
    np.testing.assert_allclose(out, _fda_reference(src, trg, 1.0), atol=1e-9)
    np.testing.assert_allclose(np.abs(np.fft.fft2(out)), np.abs(np.fft.fft2(trg)), rtol=1e-6)
