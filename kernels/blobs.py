"""Connected components on a binary frame, with OpenCV's statistics, by run-length union-find.

The mask is read once, row by row, as runs of non-zero pixels. Runs of consecutive rows that touch (4- or
8-connectivity) are joined in a union-find whose root is always the earliest run, so final labels number
the components in raster order of their first pixel, as OpenCV's sequential algorithms do. Areas, boxes and
coordinate sums are accumulated per run, not per pixel, which is why this beats a pixel-wise labeller on the
sparse masks of a slide scan.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from kernels._checks import check_connectivity, check_frame, check_int, check_out

__all__ = ["Components", "connected_components", "filter_by_area"]

# Column order of the stats table, as cv2.CC_STAT_LEFT .. cv2.CC_STAT_AREA.
LEFT, TOP, WIDTH, HEIGHT, AREA = range(5)


class Components(NamedTuple):
    """Result of :func:`connected_components` (the layout of ``cv2.connectedComponentsWithStats``).

    Attributes
    ----------
    n_labels : int
        Number of labels including the background label 0.
    labels : (M, N) ndarray of int32
        Label image; 0 is the background.
    stats : (n_labels, 5) ndarray of int32
        Per label: left, top, width, height, area (row 0 describes the background).
    centroids : (n_labels, 2) ndarray of float64
        Per label: mean x, mean y.
    """

    n_labels: int
    labels: np.ndarray
    stats: np.ndarray
    centroids: np.ndarray


@njit(cache=True, nogil=True, inline="always")
def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]  # path halving
        i = parent[i]
    return i


_ONES = np.uint64(0x0101010101010101)
_HIGHS = np.uint64(0x8080808080808080)


@njit(cache=True, nogil=True, inline="always")
def _has_zero_byte(v: np.uint64) -> bool:
    return ((v - _ONES) & ~v & _HIGHS) != 0


@njit(cache=True, nogil=True, inline="always")
def _transitions(flat: np.ndarray, p: int, stop: int, state: int, tr: np.ndarray, k: int) -> tuple[int, int]:
    """Record in ``tr`` each position in ``[p, stop)`` where zero/non-zero changes; branch-free."""
    for q in range(p, stop):
        b = 1 if flat[q] != 0 else 0
        tr[k] = q
        k += b ^ state
        state = b
    return state, k


@njit(cache=True, nogil=True)
def _row_runs(flat: np.ndarray, words: np.ndarray, start: int, width: int, y: int, tr: np.ndarray,
              x0s: np.ndarray, x1s: np.ndarray, ys: np.ndarray, n: int) -> int:
    """Append the runs of non-zero bytes of row ``y`` to the run tables; returns the new run count.

    ``flat`` is the mask as one byte vector, the row being ``flat[start:start + width]``; ``words`` is the
    same memory read as uint64 (empty when unaligned). Whole 8-byte words that are all zero outside a run,
    or hold no zero byte inside one, are skipped; other bytes are scanned without branches (a branch per
    run edge mispredicts on textured masks).
    """
    end = start + width
    state = 0
    k = 0
    p = start
    if words.size > 0:
        head = min(end, (p + 7) & ~7)
        state, k = _transitions(flat, p, head, state, tr, k)
        p = head
        while p + 8 <= end:
            w = words[p >> 3]
            if not ((state == 0 and w == 0) or (state == 1 and not _has_zero_byte(w))):
                state, k = _transitions(flat, p, p + 8, state, tr, k)
            p += 8
    state, k = _transitions(flat, p, end, state, tr, k)
    if state == 1:
        tr[k] = end
        k += 1
    for i in range(0, k, 2):
        x0s[n] = tr[i] - start
        x1s[n] = tr[i + 1] - start
        ys[n] = y
        n += 1
    return n


@njit(cache=True, nogil=True)
def _link_runs(a0: int, a1: int, b0: int, b1: int, x0s: np.ndarray, x1s: np.ndarray, parent: np.ndarray,
               ext: int) -> None:
    """Union runs ``a0..a1`` (row above) with touching runs ``b0..b1`` (current row).

    Runs are half-open ``[x0, x1)``; ``ext`` is 1 for 8-connectivity (diagonal contact counts), else 0.
    """
    for b in range(b0, b1):
        parent[b] = b
    i = a0
    j = b0
    while i < a1 and j < b1:
        if x1s[i] + ext <= x0s[j]:
            i += 1
            continue
        if x1s[j] + ext <= x0s[i]:
            j += 1
            continue
        ri = _find(parent, i)
        rj = _find(parent, j)
        if ri < rj:
            parent[rj] = ri
        elif rj < ri:
            parent[ri] = rj
        if x1s[i] < x1s[j]:
            i += 1
        else:
            j += 1


@njit(cache=True, nogil=True)
def _resolve(n_runs: int, x0s: np.ndarray, x1s: np.ndarray, ys: np.ndarray,
             parent: np.ndarray, run_label: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Number the components 1.. in raster order; return (count, stats, sum_x, sum_y) for labels 1..count.

    ``stats`` rows are left, top, right (inclusive), bottom (inclusive), area; index 0 is unused here.
    """
    n = 0
    for r in range(n_runs):
        root = _find(parent, r)
        if root == r:
            n += 1
            run_label[r] = n
        else:
            run_label[r] = run_label[root]  # root < r, already numbered
    stats = np.empty((n + 1, 5), np.int64)
    sx = np.zeros(n + 1, np.int64)
    sy = np.zeros(n + 1, np.int64)
    for k in range(1, n + 1):
        stats[k, 0] = 1 << 40
        stats[k, 1] = 1 << 40
        stats[k, 2] = -1
        stats[k, 3] = -1
        stats[k, 4] = 0
    for r in range(n_runs):
        k = run_label[r]
        a = x0s[r]
        b = x1s[r]
        y = ys[r]
        length = b - a
        stats[k, 0] = min(stats[k, 0], a)
        stats[k, 1] = min(stats[k, 1], y)
        stats[k, 2] = max(stats[k, 2], b - 1)
        stats[k, 3] = max(stats[k, 3], y)
        stats[k, 4] += length
        sx[k] += (a + b - 1) * length // 2  # sum of a..b-1, exact
        sy[k] += y * length
    return n, stats, sx, sy


@njit(cache=True, nogil=True)
def _scan_runs(mask: np.ndarray, words: np.ndarray,
               ext: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs of the whole mask and their union-find forest; returns (n_runs, x0s, x1s, ys, parent, row_start)."""
    height, width = mask.shape
    cap = height * ((width + 1) // 2)
    x0s = np.empty(cap, np.int32)
    x1s = np.empty(cap, np.int32)
    ys = np.empty(cap, np.int32)
    parent = np.empty(cap, np.int32)
    row_start = np.empty(height + 1, np.int64)
    n = 0
    prev = 0
    flat = mask.reshape(-1)
    tr = np.empty(width + 1, np.int64)
    for y in range(height):
        row_start[y] = n
        m = _row_runs(flat, words, y * width, width, y, tr, x0s, x1s, ys, n)
        _link_runs(prev, n, n, m, x0s, x1s, parent, ext)
        prev = n
        n = m
    row_start[height] = n
    return n, x0s, x1s, ys, parent, row_start


@njit(cache=True, nogil=True)
def _paint_labels(n_runs: int, x0s: np.ndarray, x1s: np.ndarray, row_start: np.ndarray,
                  run_label: np.ndarray, labels: np.ndarray) -> None:
    height, width = labels.shape
    for y in range(height):
        row = labels[y]
        # Clearing the whole row first is one vectorised store loop; per-gap loops cost more on short runs.
        for i in range(width):
            row[i] = 0
        for r in range(row_start[y], row_start[y + 1]):
            lab = run_label[r]
            for i in range(x0s[r], x1s[r]):
                row[i] = lab


@njit(cache=True, nogil=True)
def _components_core(mask: np.ndarray, words: np.ndarray, ext: int,
                     labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    height, width = mask.shape
    n_runs, x0s, x1s, ys, parent, row_start = _scan_runs(mask, words, ext)
    run_label = np.empty(max(n_runs, 1), np.int32)
    n, st, sx, sy = _resolve(n_runs, x0s, x1s, ys, parent, run_label)
    _paint_labels(n_runs, x0s, x1s, row_start, run_label, labels)
    stats = np.empty((n + 1, 5), np.int32)
    centroids = np.empty((n + 1, 2), np.float64)
    fg_area = 0
    fg_sx = 0
    fg_sy = 0
    for k in range(1, n + 1):
        area = st[k, 4]
        stats[k, 0] = st[k, 0]
        stats[k, 1] = st[k, 1]
        stats[k, 2] = st[k, 2] - st[k, 0] + 1
        stats[k, 3] = st[k, 3] - st[k, 1] + 1
        stats[k, 4] = area
        centroids[k, 0] = sx[k] / area
        centroids[k, 1] = sy[k] / area
        fg_area += area
        fg_sx += sx[k]
        fg_sy += sy[k]
    _background_stats(mask, n_runs, x0s, x1s, row_start, fg_area, fg_sx, fg_sy, stats, centroids)
    return stats, centroids


@njit(cache=True, nogil=True)
def _background_stats(mask: np.ndarray, n_runs: int, x0s: np.ndarray, x1s: np.ndarray, row_start: np.ndarray,
                      fg_area: int, fg_sx: int, fg_sy: int, stats: np.ndarray, centroids: np.ndarray) -> None:
    """Row 0 of the tables: the zero pixels, as OpenCV reports them (box of all zero pixels)."""
    height, width = mask.shape
    left = width
    right = -1
    top = height
    bottom = -1
    for y in range(height):
        r0 = row_start[y]
        r1 = row_start[y + 1]
        if r1 - r0 == 1 and x0s[r0] == 0 and x1s[r0] == width:
            continue  # row entirely foreground
        first = 0 if (r1 == r0 or x0s[r0] > 0) else x1s[r0]
        last = width - 1 if (r1 == r0 or x1s[r1 - 1] < width) else x0s[r1 - 1] - 1
        left = min(left, first)
        right = max(right, last)
        top = min(top, y)
        bottom = max(bottom, y)
    area = height * width - fg_area
    total_sx = height * (width * (width - 1) // 2)
    total_sy = width * (height * (height - 1) // 2)
    if area > 0:
        stats[0, 0] = left
        stats[0, 1] = top
        stats[0, 2] = right - left + 1
        stats[0, 3] = bottom - top + 1
        centroids[0, 0] = (total_sx - fg_sx) / area
        centroids[0, 1] = (total_sy - fg_sy) / area
    else:
        # No background pixel: the row OpenCV 5.0 reports (measured), and 0/0 centroids.
        stats[0, 0] = -1
        stats[0, 1] = 2147483647
        stats[0, 2] = 0
        stats[0, 3] = 0
        centroids[0, 0] = np.nan
        centroids[0, 1] = np.nan
    stats[0, 4] = area


def mask_words(mask: np.ndarray) -> np.ndarray:
    """The mask's bytes read as uint64 words (for fast zero skipping), or an empty array when unaligned."""
    flat = mask.reshape(-1)
    n8 = flat.size // 8
    if n8 == 0 or flat.ctypes.data % 8 != 0:
        return np.empty(0, np.uint64)
    return flat[: n8 * 8].view(np.uint64)


def connected_components(mask: np.ndarray, connectivity: int = 8,
                         labels_out: np.ndarray | None = None) -> Components:
    """Label the non-zero pixels of ``mask``, like ``cv2.connectedComponentsWithStats``.

    Same count, label order (raster order of each component's first pixel), label image, stats and
    centroids as OpenCV's sequential algorithms, including row 0 for the background.

    Parameters
    ----------
    mask : (M, N) ndarray of uint8
        Any non-zero pixel is foreground.
    connectivity : {8, 4}, optional
        8: diagonal neighbours touch; 4: only edge neighbours.
    labels_out : (M, N) ndarray of int32, optional
        Preallocated label image.

    Returns
    -------
    Components
        ``(n_labels, labels, stats, centroids)``.

    Raises
    ------
    ValueError
        On a bad mask, connectivity or output.

    Examples
    --------
    >>> m = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]], np.uint8)
    >>> connected_components(m, 8).n_labels, connected_components(m, 4).n_labels
    (2, 3)
    """
    mask = check_frame(mask, "mask")
    conn = check_connectivity(connectivity)
    labels = check_out(labels_out, mask.shape, np.int32, mask, name="labels_out")
    stats, centroids = _components_core(mask, mask_words(mask), 1 if conn == 8 else 0, labels)
    return Components(int(stats.shape[0]), labels, stats, centroids)


def filter_by_area(stats: np.ndarray, min_area: int = 1, max_area: int | None = None) -> np.ndarray:
    """Indices of the rows of a stats table whose area lies in ``[min_area, max_area]``.

    Parameters
    ----------
    stats : (K, 5) ndarray of int32
        A stats table (left, top, width, height, area). For tables from :func:`connected_components` row 0
        is the background; pass ``stats[1:]`` (and add 1 to the result) to leave it out.
    min_area : int, optional
        Smallest kept area in pixels, >= 1.
    max_area : int, optional
        Largest kept area; unbounded when None.

    Returns
    -------
    (J,) ndarray of int64
        Row indices in increasing order.

    Raises
    ------
    ValueError
        On a malformed table or bounds (``max_area < min_area``).
    """
    if not isinstance(stats, np.ndarray) or stats.ndim != 2 or stats.shape[1] != 5:
        shape = getattr(stats, "shape", None)
        raise ValueError(f"stats must be a (K, 5) array of left, top, width, height, area; got shape {shape}")
    lo = check_int(min_area, "min_area", 1)
    hi = None if max_area is None else check_int(max_area, "max_area", lo)
    area = stats[:, AREA]
    keep = area >= lo
    if hi is not None:
        keep &= area <= hi
    return np.flatnonzero(keep)
