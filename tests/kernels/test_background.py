"""The background-relative threshold against a NumPy statement of the same steps, and what it is for."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import kernels as K
from kernels.background import GRID, MIN_CELL, MIN_SAMPLES, SUBSAMPLE


def _reference_surface(frame: np.ndarray, contrast: float) -> np.ndarray:
    """The glass surface, step by step in NumPy (module docstring of kernels/background.py)."""
    h, w = frame.shape
    gx, gy = min(GRID[0], max(1, w // MIN_CELL)), min(GRID[1], max(1, h // MIN_CELL))
    us, vs, ms, sampled = [], [], [], []
    for i in range(gy):
        y0, y1 = i * h // gy, (i + 1) * h // gy
        for j in range(gx):
            x0, x1 = j * w // gx, (j + 1) * w // gx
            px = np.sort(frame[y0:y1:SUBSAMPLE, x0:x1:SUBSAMPLE].ravel())
            sampled.append(px)
            us.append((x0 + x1) / w - 1.0)
            vs.append((y0 + y1) / h - 1.0)
            ms.append(float(px[(3 * px.size + 3) // 4 - 1]))
    u, v, m = np.array(us), np.array(vs), np.array(ms)
    basis = np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=1)
    keep = np.ones(u.size, bool)

    def fit() -> np.ndarray | None:
        if keep.sum() < MIN_SAMPLES:
            return None
        coef, *_ = np.linalg.lstsq(basis[keep], m[keep], rcond=None)
        return coef

    coef = fit()
    for tol in (0.25, 0.1, 0.5 * contrast):
        if coef is None:
            break
        f = basis @ coef
        keep = np.abs(m - f) <= np.maximum(tol * f, 1.0)
        coef = fit()
    yy, xx = np.mgrid[0:h, 0:w]
    uu, vv = (2.0 * xx + 1) / w - 1, (2.0 * yy + 1) / h - 1
    if coef is None:
        allpx = np.concatenate(sampled)
        cv2.ipp.setUseIPP(False)
        try:
            otsu = int(cv2.threshold(allpx.reshape(1, -1), 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)[0])
        finally:
            cv2.ipp.setUseIPP(True)
        bright = np.sort(allpx[allpx > otsu]) if (allpx > otsu).any() else np.sort(allpx)
        return np.full((h, w), float(bright[(bright.size + 1) // 2 - 1]))
    lo, hi = m[keep].min(), m[keep].max()
    surf = coef[0] + coef[1] * uu + coef[2] * vv + coef[3] * uu * uu + coef[4] * uu * vv + coef[5] * vv * vv
    return np.clip(surf, max(lo - (hi - lo) - 2, 0), min(hi + (hi - lo) + 2, 255))


@pytest.mark.parametrize("contrast", [0.06, 0.3])
def test_background_equals_reference(frame: np.ndarray, contrast: float) -> None:
    ref = _reference_surface(frame, contrast)
    np.testing.assert_allclose(K.background_map(frame, contrast), ref, rtol=0, atol=1e-6)
    mask = K.background_threshold(frame, contrast)
    limit = ((1 - contrast) * ref).astype(np.float32)
    expected = frame.astype(np.float32) < limit
    # Solver round-off (1e-9) can only matter where the limit sits on a grey level.
    edge = np.abs(limit - np.round(limit)) < 1e-4
    assert np.array_equal((mask > 0)[~edge], expected[~edge])
    assert set(np.unique(mask).tolist()) <= {0, 255}


def _vignetted(h: int = 480, w: int = 640, fall: float = 0.2) -> np.ndarray:
    """Glass at 200 falling off by ``fall`` toward the corners, with Gaussian noise."""
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((xx - 0.45 * w) / w) ** 2 + ((yy - 0.55 * h) / h) ** 2
    return 200.0 * (1 - fall * r2 / 0.5)


def _noisy(img: np.ndarray, noise: float = 2.0, seed: int = 0) -> np.ndarray:
    return np.clip(img + np.random.default_rng(seed).normal(0, noise, img.shape), 0, 255).astype(np.uint8)


def test_vignetting_is_not_an_object() -> None:
    """20 % darker corners, a faint (10 %) and a dark (50 %) structure: exactly the structures are found."""
    img = _vignetted()
    img[200:300, 250:400] *= 0.9
    img[50:150, 420:600] *= 0.5
    mask = K.background_threshold(_noisy(img), 0.06) > 0
    truth = np.zeros(mask.shape, bool)
    truth[200:300, 250:400] = truth[50:150, 420:600] = True
    assert (mask & truth).sum() / truth.sum() > 0.99
    assert (mask & ~truth).sum() < 20  # a few noise pixels at most
    flat = _noisy(img) < 0.94 * np.median(_noisy(img))  # one level for the whole frame takes the corners
    assert flat[~truth].mean() > 0.05


def test_empty_field_and_black_frame() -> None:
    empty = K.background_threshold(_noisy(_vignetted(fall=0.1), noise=3.0), 0.06)
    assert (empty > 0).mean() < 0.002  # single noise pixels 3.5 sigma down, no blob of them
    assert K.connected_components(empty).stats[1:, 4].max(initial=0) <= 4
    assert not K.background_threshold(np.zeros((48, 64), np.uint8), 0.5).any()
    assert K.analyse_frame(np.zeros((48, 64), np.uint8), "background").level == -1


def test_large_structure_and_small_frames() -> None:
    """A structure over most of the frame falls back to a flat glass level; tiny frames still work."""
    img = np.full((120, 160), 200.0)
    img[5:115, 5:155] = 100.0
    mask = K.background_threshold(_noisy(img, seed=2), 0.06) > 0
    assert mask[5:115, 5:155].mean() > 0.99 and mask.sum() <= 110 * 150 + 10
    for shape in [(3, 40), (16, 16), (9, 2600)]:
        f = np.full(shape, 150, np.uint8)
        f.flat[0] = 10
        got = K.background_threshold(f, 0.2)
        np.testing.assert_array_equal(got > 0, f < 0.8 * 150)
    assert not K.background_threshold(np.full((1, 1), 10, np.uint8), 0.2).any()  # one pixel is its own glass
