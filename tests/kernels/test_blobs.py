"""Connected components against ``cv2.connectedComponentsWithStats`` on masks of the test frames.

OpenCV's default 8-connectivity algorithm (Spaghetti) numbers labels in the order of its 2x2 blocks, not
in raster order, so the tables are compared after sorting the foreground rows by (top, left, width,
height, area); the label images are compared as a one-to-one relabelling. Row 0 (background) is compared
as is.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import kernels as K


def _sorted(stats: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fg = stats[1:]
    order = np.lexsort((fg[:, 4], fg[:, 3], fg[:, 2], fg[:, 0], fg[:, 1])) + 1
    return stats[order], centroids[order]


def _assert_same_components(mask: np.ndarray, conn: int) -> int:
    n_ref, labels_ref, stats_ref, cent_ref = cv2.connectedComponentsWithStats(mask, connectivity=conn)
    res = K.connected_components(mask, conn)
    assert res.n_labels == n_ref
    assert res.stats.dtype == np.int32 and res.centroids.dtype == np.float64
    s_ours, c_ours = _sorted(res.stats, res.centroids)
    s_ref, c_ref = _sorted(stats_ref, cent_ref)
    np.testing.assert_array_equal(s_ours, s_ref)
    np.testing.assert_allclose(c_ours, c_ref, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(res.stats[0], stats_ref[0])
    np.testing.assert_allclose(res.centroids[0], cent_ref[0], rtol=0, atol=1e-9)
    # Label images: same partition (each of our labels maps to exactly one of OpenCV's, and back).
    pairs = np.unique(res.labels.astype(np.int64) * n_ref + labels_ref)
    present = np.unique(labels_ref).size  # n_ref, or n_ref - 1 when no pixel is background
    assert pairs.size == present == np.unique(res.labels).size
    assert np.array_equal(res.labels == 0, labels_ref == 0)
    return n_ref


@pytest.mark.parametrize("conn", [4, 8])
def test_components_of_adaptive_masks_equal_opencv(frame: np.ndarray, conn: int) -> None:
    mask = cv2.adaptiveThreshold(frame, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY_INV, 31, 5)
    assert _assert_same_components(mask, conn) > 1


@pytest.mark.parametrize("conn", [4, 8])
def test_components_of_otsu_masks_equal_opencv(frame: np.ndarray, conn: int) -> None:
    _, mask = cv2.threshold(frame, 0, 1, cv2.THRESH_BINARY | cv2.THRESH_OTSU)  # foreground value 1, not 255
    _assert_same_components(np.ascontiguousarray(mask), conn)


@pytest.mark.parametrize("conn", [4, 8])
@pytest.mark.parametrize("density", [0.05, 0.5, 0.95])
def test_components_of_random_masks_equal_opencv(conn: int, density: float) -> None:
    rng = np.random.default_rng(int(density * 100) + conn)
    for shape in [(1, 1), (1, 17), (17, 1), (37, 53), (480, 640)]:
        mask = (rng.random(shape) < density).astype(np.uint8)
        _assert_same_components(mask, conn)


@pytest.mark.parametrize("conn", [4, 8])
def test_empty_and_full_masks(conn: int) -> None:
    _assert_same_components(np.zeros((30, 40), np.uint8), conn)
    _assert_same_components(np.full((30, 40), 255, np.uint8), conn)


def test_diagonal_contact_depends_on_connectivity() -> None:
    m = np.zeros((4, 4), np.uint8)
    m[0, 0] = m[1, 1] = m[2, 2] = 1
    assert K.connected_components(m, 8).n_labels == 2
    assert K.connected_components(m, 4).n_labels == 4


def test_unaligned_mask_gives_same_result() -> None:
    mask = (np.random.default_rng(3).random((50, 61)) < 0.4).astype(np.uint8)
    buf = np.zeros(mask.size + 1, np.uint8)
    shifted = buf[1:].reshape(mask.shape)
    shifted[:] = mask
    a = K.connected_components(mask)
    b = K.connected_components(shifted)
    np.testing.assert_array_equal(a.stats, b.stats)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_labels_out_is_filled() -> None:
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 2:5] = 1
    out = np.full((8, 8), -5, np.int32)
    res = K.connected_components(mask, labels_out=out)
    assert res.labels is out
    assert set(np.unique(out).tolist()) == {0, 1}


def test_filter_by_area() -> None:
    stats = np.array([[0, 0, 9, 9, 50], [1, 1, 2, 2, 4], [3, 3, 3, 3, 9], [5, 5, 4, 4, 16]], np.int32)
    assert K.filter_by_area(stats[1:], 5).tolist() == [1, 2]
    assert K.filter_by_area(stats[1:], 4, 9).tolist() == [0, 1]
    assert K.filter_by_area(stats, 1, 10).tolist() == [1, 2]
