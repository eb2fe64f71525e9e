"""Focus measures against float64 NumPy references (reflect-101 borders, as cv2's default), to 1e-9 relative."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import kernels as K

RECTS = [None, (0, 0, 7, 5), (13, 21, 100, 77), "right-bottom"]


def _rect(frame: np.ndarray, rect: object) -> tuple[int, int, int, int]:
    h, w = frame.shape
    if rect is None:
        return 0, 0, w, h
    if rect == "right-bottom":  # touches the frame's last row and column
        return w - 40, h - 30, 40, 30
    assert isinstance(rect, tuple)
    return rect


def _padded(frame: np.ndarray) -> np.ndarray:
    # numpy's "reflect" is OpenCV's BORDER_REFLECT_101 (dcb|abcd|cba).
    return np.pad(frame.astype(np.float64), 1, mode="reflect")


def ref_laplacian(frame: np.ndarray) -> np.ndarray:
    p = _padded(frame)
    return p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * p[1:-1, 1:-1]


def ref_sobel(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = _padded(frame)
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return gx, gy


def _close(ours: float, ref: float) -> None:
    assert abs(ours - ref) <= 1e-9 * max(abs(ref), 1e-300), (ours, ref)


@pytest.mark.parametrize("rect", RECTS, ids=["frame", "corner", "inner", "edge"])
def test_laplacian_variance(frame: np.ndarray, rect: object) -> None:
    x, y, w, h = _rect(frame, rect)
    ref = ref_laplacian(frame)[y:y + h, x:x + w].var()
    _close(K.laplacian_variance(frame, None if rect is None else (x, y, w, h)), ref)


def test_laplacian_variance_is_opencvs() -> None:
    f = np.random.default_rng(0).integers(0, 256, (48, 64), dtype=np.uint8)
    _close(K.laplacian_variance(f), float(cv2.Laplacian(f, cv2.CV_64F).var()))


@pytest.mark.parametrize("rect", RECTS, ids=["frame", "corner", "inner", "edge"])
def test_tenengrad(frame: np.ndarray, rect: object) -> None:
    x, y, w, h = _rect(frame, rect)
    gx, gy = ref_sobel(frame)
    ref = (gx ** 2 + gy ** 2)[y:y + h, x:x + w].mean()
    _close(K.tenengrad(frame, None if rect is None else (x, y, w, h)), ref)


def test_sobel_reference_is_opencvs() -> None:
    f = np.random.default_rng(0).integers(0, 256, (48, 64), dtype=np.uint8)
    gx, gy = ref_sobel(f)
    np.testing.assert_array_equal(gx, cv2.Sobel(f, cv2.CV_64F, 1, 0, ksize=3))
    np.testing.assert_array_equal(gy, cv2.Sobel(f, cv2.CV_64F, 0, 1, ksize=3))


@pytest.mark.parametrize("rect", RECTS, ids=["frame", "corner", "inner", "edge"])
def test_brenner(frame: np.ndarray, rect: object) -> None:
    x, y, w, h = _rect(frame, rect)
    crop = frame[y:y + h, x:x + w].astype(np.float64)
    ref = ((crop[:, 2:] - crop[:, :-2]) ** 2).mean()
    _close(K.brenner(frame, None if rect is None else (x, y, w, h)), ref)


@pytest.mark.parametrize("rect", RECTS, ids=["frame", "corner", "inner", "edge"])
def test_normalized_variance(frame: np.ndarray, rect: object) -> None:
    x, y, w, h = _rect(frame, rect)
    crop = frame[y:y + h, x:x + w].astype(np.float64)
    _close(K.normalized_variance(frame, None if rect is None else (x, y, w, h)), crop.var() / crop.mean())


def test_degenerate_frames() -> None:
    black = np.zeros((10, 10), np.uint8)
    assert K.normalized_variance(black) == 0.0
    assert K.laplacian_variance(black) == 0.0
    one = np.full((1, 1), 9, np.uint8)
    assert K.laplacian_variance(one) == 0.0
    assert K.tenengrad(one) == 0.0


def test_sharper_frame_scores_higher() -> None:
    from kernels.testing import blob_frame
    f = blob_frame(120, 160, seed=2, noise=0.0)
    blurred = cv2.GaussianBlur(f, (9, 9), 3)
    for measure in (K.laplacian_variance, K.tenengrad, K.brenner):
        assert measure(f) > measure(blurred)


def test_rows_wider_than_the_uint32_chunk() -> None:
    """Rows longer than 65535 pixels are summed in chunks (a uint32 row sum would overflow)."""
    # Columns 0, 0, 255, 255, ...: every Brenner pair differs by 255, so a row sums to 69999 * 255**2 > 2**32.
    f = np.zeros((3, 70001), np.uint8)
    f[:, 2::4] = 255
    f[:, 3::4] = 255
    ref = f.astype(np.float64)
    _close(K.brenner(f), ((ref[:, 2:] - ref[:, :-2]) ** 2).mean())
    # Nearly all 255: the row's sum of squares is about 70001 * 255**2 > 2**32.
    g = np.full((2, 70001), 255, np.uint8)
    g[:, ::1000] = 3
    ref = g.astype(np.float64)
    _close(K.normalized_variance(g), ref.var() / ref.mean())
