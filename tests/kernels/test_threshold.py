"""Thresholds against OpenCV on the test frames: pixel-identical (adaptive Gaussian: >= 99.9 %)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import kernels as K


@pytest.mark.parametrize("thresh", [0, 99.7, 128, 254, 255])
@pytest.mark.parametrize("invert", [False, True])
def test_global_threshold_equals_opencv(frame: np.ndarray, thresh: float, invert: bool) -> None:
    kind = cv2.THRESH_BINARY_INV if invert else cv2.THRESH_BINARY
    _, ref = cv2.threshold(frame, thresh, 200, kind)
    np.testing.assert_array_equal(K.threshold(frame, thresh, 200, invert), ref)


@pytest.mark.parametrize("invert", [False, True])
def test_otsu_level_and_mask_equal_opencv(frame: np.ndarray, invert: bool) -> None:
    kind = (cv2.THRESH_BINARY_INV if invert else cv2.THRESH_BINARY) | cv2.THRESH_OTSU
    level_ref, ref = cv2.threshold(frame, 0, 255, kind)
    level, mask = K.otsu(frame, 255, invert)
    assert level == int(level_ref)
    assert K.otsu_level(frame) == int(level_ref)
    np.testing.assert_array_equal(mask, ref)


@pytest.mark.parametrize(("block", "c", "invert"), [(3, 0, False), (11, 2.5, True), (31, 5, True),
                                                    (51, -3.2, False)])
def test_adaptive_mean_equals_opencv(frame: np.ndarray, block: int, c: float, invert: bool) -> None:
    kind = cv2.THRESH_BINARY_INV if invert else cv2.THRESH_BINARY
    ref = cv2.adaptiveThreshold(frame, 255, cv2.ADAPTIVE_THRESH_MEAN_C, kind, block, c)
    np.testing.assert_array_equal(K.adaptive_mean(frame, block, c, 255, invert), ref)


@pytest.mark.parametrize(("block", "c", "invert"), [(3, 0, False), (11, 2.5, True), (31, 5, True),
                                                    (51, -3.2, False)])
def test_adaptive_gaussian_matches_opencv(frame: np.ndarray, block: int, c: float, invert: bool) -> None:
    kind = cv2.THRESH_BINARY_INV if invert else cv2.THRESH_BINARY
    ref = cv2.adaptiveThreshold(frame, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, kind, block, c)
    ours = K.adaptive_gaussian(frame, block, c, 255, invert)
    agree = float(np.mean(ours == ref))
    assert agree >= 0.999, f"only {agree:.6%} of pixels agree"


def test_adaptive_on_small_frame_with_block_equal_to_side() -> None:
    f = np.random.default_rng(1).integers(0, 256, (5, 9), dtype=np.uint8)
    for method, ours in ((cv2.ADAPTIVE_THRESH_MEAN_C, K.adaptive_mean),
                         (cv2.ADAPTIVE_THRESH_GAUSSIAN_C, K.adaptive_gaussian)):
        ref = cv2.adaptiveThreshold(f, 255, method, cv2.THRESH_BINARY, 5, 1)
        np.testing.assert_array_equal(ours(f, 5, 1), ref)


def test_gaussian_kernel_equals_opencv() -> None:
    for block in (3, 5, 7, 9, 31, 101):
        ref = cv2.getGaussianKernel(block, 0, cv2.CV_32F).ravel()
        np.testing.assert_array_equal(K.gaussian_kernel(block), ref)


def test_preallocated_output_is_used_and_returned() -> None:
    f = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    out = np.full_like(f, 7)
    assert K.adaptive_mean(f, 3, 0, out=out) is out
    assert K.threshold(f, 100, out=out) is out
    np.testing.assert_array_equal(out, np.where(f > 100, 255, 0))
