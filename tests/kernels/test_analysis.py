"""The fused analysis equals the chain of separate kernels (and so OpenCV's chain) on the test frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import kernels as K


def _chain(frame: np.ndarray, method: str, conn: int, min_area: int, max_area: int | None,
           invert: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The same analysis from OpenCV calls and the float64 Laplacian: (mask, stats, centroids, focus)."""
    kind = cv2.THRESH_BINARY_INV if invert else cv2.THRESH_BINARY
    if method == "gaussian":
        mask = K.adaptive_gaussian(frame, 31, 5.0, 255, invert)  # OpenCV's differs on a few pixels
    elif method == "mean":
        mask = cv2.adaptiveThreshold(frame, 255, cv2.ADAPTIVE_THRESH_MEAN_C, kind, 31, 5.0)
    elif method == "otsu":
        mask = cv2.threshold(frame, 0, 255, kind | cv2.THRESH_OTSU)[1]
    elif method == "background":  # checked against a NumPy reference in test_background.py
        mask = K.background_threshold(frame, 0.06)
    else:
        mask = cv2.threshold(frame, 128, 255, kind)[1]
    _, _, stats, cents = cv2.connectedComponentsWithStats(mask, connectivity=conn)
    stats, cents = stats[1:], cents[1:]
    order = np.lexsort((stats[:, 0], stats[:, 1]))  # (top, left): the fused result is in raster order
    stats, cents = stats[order], cents[order]
    area = stats[:, 4]
    keep = (area >= min_area) & (area <= (max_area or area.max(initial=0)))
    stats, cents = stats[keep], cents[keep]
    lap = cv2.Laplacian(frame, cv2.CV_64F, ksize=1)
    focus = np.array([float((lap[t:t + h, x:x + w] ** 2).sum()) for x, t, w, h, _ in stats])
    return mask, stats, cents, focus


@pytest.mark.parametrize("method", ["gaussian", "mean", "otsu", "global", "background"])
def test_fused_analysis_equals_chain(frame: np.ndarray, method: str) -> None:
    mask_ref, stats, cents, focus = _chain(frame, method, 8, 4, None, True)
    mask = np.empty_like(frame)
    res = K.analyse_frame(frame, method, block_size=31, c=5.0, level=128, contrast=0.06, invert=True, min_area=4,
                          mask_out=mask)
    np.testing.assert_array_equal(mask, mask_ref)
    # Equal (top, left) cannot tie in raster order of first pixels unless boxes differ; compare as sorted.
    order = np.lexsort((res.stats[:, 0], res.stats[:, 1]))
    np.testing.assert_array_equal(res.stats[order], stats)
    np.testing.assert_allclose(res.centroids[order], cents, rtol=0, atol=1e-9)
    np.testing.assert_allclose(res.focus[order], focus, rtol=1e-12)
    lap_var = float(cv2.Laplacian(frame, cv2.CV_64F, ksize=1).var())
    assert abs(res.laplacian_variance - lap_var) <= 1e-9 * lap_var
    if method == "otsu":
        assert res.level == int(cv2.threshold(frame, 0, 255, cv2.THRESH_OTSU)[0])
    if method == "background":
        centre = K.background_map(frame, 0.06)[frame.shape[0] // 2, frame.shape[1] // 2]
        assert abs(res.level + 1 - 0.94 * centre) <= 1.0


def test_area_filter_and_connectivity() -> None:
    f = np.full((40, 60), 220, np.uint8)
    f[5:7, 5:7] = 10        # area 4
    f[10:20, 10:20] = 10    # area 100
    f[20, 20] = 10          # touches the square diagonally: 8-connected only
    f[30:35, 40:55] = 10    # area 75
    r8 = K.analyse_frame(f, "global", level=128, connectivity=8, min_area=5, max_area=100)
    assert r8.n_components == 3 and r8.stats[:, 4].tolist() == [75]
    r4 = K.analyse_frame(f, "global", level=128, connectivity=4, min_area=5, max_area=100)
    assert r4.n_components == 4 and r4.stats[:, 4].tolist() == [100, 75]
    assert r4.n_blobs == 2 and r4.focus.shape == (2,) and np.all(r4.focus > 0)


def test_blank_frame_has_no_blobs() -> None:
    r = K.analyse_frame(np.full((48, 64), 200, np.uint8))
    assert r.n_blobs == 0 and r.n_components == 0 and r.laplacian_variance == 0.0


def test_background_method_on_an_empty_field() -> None:
    """Glass and noise only: the background method finds nothing, where Otsu's level splits the noise."""
    noise = np.clip(np.random.default_rng(1).normal(160, 3, (480, 640)), 0, 255).astype(np.uint8)
    r = K.analyse_frame(noise, "background", contrast=0.06, min_area=5)
    assert r.n_blobs == 0 and 145 <= r.level <= 152
    assert K.analyse_frame(noise, "otsu", min_area=5).n_blobs > 100
