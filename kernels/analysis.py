"""The fused per-frame analysis of the scan loop: threshold -> blobs -> per-blob focus, in one sweep.

One pass down the frame does, for each row: the threshold (into a one-row buffer that stays in L1, so the
binary mask is never written to memory unless asked for), the run extraction and union-find of the blob
search, and the frame's Laplacian sums. After the sweep the components are numbered and filtered by area,
and each kept blob gets a focus score, the sum of squared Laplacian inside its bounding box, computed from
the frame over that box only: TPP slides are mostly empty glass, so the boxes cover a small part of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from kernels._checks import (
    check_block_size,
    check_connectivity,
    check_contrast,
    check_frame,
    check_int,
    check_out,
    check_real,
)
from kernels.background import _centre_level, _limit_row, _surface, _threshold_row_below
from kernels.blobs import _link_runs, _resolve, _row_runs
from kernels.focus import _laplacian_row, _laplacian_row_sums, _laplacian_sq_sum_box
from kernels.threshold import (
    _adaptive_delta,
    _gauss_ring_fill,
    _gauss_row,
    _gauss_start,
    _histogram,
    _mean_advance,
    _mean_init,
    _mean_row,
    _otsu_from_hist,
    gaussian_kernel,
)

__all__ = ["METHODS", "FrameAnalysis", "analyse_frame"]

#: Threshold methods of :func:`analyse_frame`, with the code its compiled core uses.
METHODS: dict[str, int] = {"global": 0, "otsu": 1, "mean": 2, "gaussian": 3, "background": 4}


@dataclass(frozen=True)
class FrameAnalysis:
    """What :func:`analyse_frame` found in one frame.

    Attributes
    ----------
    level : int
        The global level used (methods ``global``, ``otsu``; foreground is the side of ``frame > level``
        that ``invert`` picks); for ``background`` the level at the frame's centre (dark side
        ``frame <= level``, -1 when nothing can be darker); -1 for the adaptive methods.
    n_components : int
        Components found before the area filter.
    stats : (K, 5) ndarray of int32
        Kept blobs, in raster order of their first pixel: left, top, width, height, area (pixels).
    centroids : (K, 2) ndarray of float64
        Mean x, mean y of each kept blob's pixels.
    focus : (K,) ndarray of float64
        Sum of squared Laplacian over each kept blob's bounding box (higher is sharper).
    laplacian_variance : float
        Variance of the Laplacian over the whole frame (as ``cv2.Laplacian(frame, CV_64F).var()``).
    """

    level: int
    n_components: int
    stats: np.ndarray
    centroids: np.ndarray
    focus: np.ndarray
    laplacian_variance: float

    @property
    def n_blobs(self) -> int:
        """Number of kept blobs."""
        return int(self.stats.shape[0])


@njit(cache=True, nogil=True)
def _threshold_row(srow: np.ndarray, t: np.uint8, hi: np.uint8, lo: np.uint8, dst: np.ndarray) -> None:
    for x in range(srow.size):
        dst[x] = hi if srow[x] > t else lo


@njit(cache=True, nogil=True)
def _analyse_core(src: np.ndarray, method: int, level: int, kernel: np.ndarray, block: int, idelta: int,
                  contrast: float, invert: bool, ext: int, min_area: int, max_area: int, mask_out: np.ndarray,
                  write_mask: bool) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, float]:
    height, width = src.shape
    hi = np.uint8(255)
    lo = np.uint8(0)
    if invert:
        hi, lo = lo, hi
    if method == 1:
        level = _otsu_from_hist(_histogram(src), src.size)
    coef, s_lo, s_hi = np.zeros(6), 0.0, 0.0
    lim = np.empty(width if method == 4 else 1, np.float32)
    if method == 4:
        coef, s_lo, s_hi = _surface(src, contrast)
        level = _centre_level(coef, s_lo, s_hi, contrast)
    t = np.uint8(max(level, 0))
    r = block // 2
    # Per-method row state (small: a row or a ring of 2r + 1 rows).
    col = np.empty(width, np.int32)
    pre = np.empty(width + 2 * r + 1, np.int64)
    ring = np.empty((min(2 * r + 1, height) if method == 3 else 1, width), np.float32)
    pad = np.empty(width + 2 * r, np.float32)
    acc = np.empty(width, np.float32)
    if method == 2:
        _mean_init(src, r, col)
    elif method == 3:
        _gauss_start(src, kernel, r, ring, pad)
    # One-row mask buffer, 8-byte aligned so the run scan can skip whole words.
    words = np.zeros((width + 7) // 8, np.uint64)
    buf = words.view(np.uint8)
    row = buf[:width]
    # Run tables of the blob search.
    cap = height * ((width + 1) // 2)
    x0s = np.empty(cap, np.int32)
    x1s = np.empty(cap, np.int32)
    ys = np.empty(cap, np.int32)
    parent = np.empty(cap, np.int32)
    tr = np.empty(width + 1, np.int64)
    n = 0
    prev = 0
    lap_s = 0
    lap_ss = 0
    for y in range(height):
        if method <= 1:
            _threshold_row(src[y], t, hi, lo, row)
        elif method == 4:
            _limit_row(coef, s_lo, s_hi, contrast, y, height, lim)
            _threshold_row_below(src[y], lim, hi, lo, row)
        elif method == 2:
            if y > 0:
                _mean_advance(src, y, r, col)
            _mean_row(src, y, r, idelta, hi, lo, col, pre, row)
        else:
            if y > 0 and y + r < height:
                _gauss_ring_fill(src, y + r, kernel, r, ring, pad)
            _gauss_row(src, y, kernel, r, idelta, hi, lo, ring, acc, row)
        if write_mask:
            mask_out[y, :] = row
        m = _row_runs(buf, words, 0, width, y, tr, x0s, x1s, ys, n)
        _link_runs(prev, n, n, m, x0s, x1s, parent, ext)
        prev = n
        n = m
        a, b = _laplacian_row_sums(src, y, 0, width)
        lap_s += a
        lap_ss += b
    run_label = np.empty(max(n, 1), np.int32)
    n_comp, st, sx, sy = _resolve(n, x0s, x1s, ys, parent, run_label)
    kept = 0
    for k in range(1, n_comp + 1):
        area = st[k, 4]
        if area >= min_area and (max_area <= 0 or area <= max_area):
            kept += 1
    stats = np.empty((kept, 5), np.int32)
    centroids = np.empty((kept, 2), np.float64)
    focus = np.empty(kept, np.float64)
    j = 0
    for k in range(1, n_comp + 1):
        area = st[k, 4]
        if area >= min_area and (max_area <= 0 or area <= max_area):
            stats[j, 0] = st[k, 0]
            stats[j, 1] = st[k, 1]
            stats[j, 2] = st[k, 2] - st[k, 0] + 1
            stats[j, 3] = st[k, 3] - st[k, 1] + 1
            stats[j, 4] = area
            centroids[j, 0] = sx[k] / area
            centroids[j, 1] = sy[k] / area
            j += 1
    _box_focus(src, stats, focus)
    npx = height * width
    lap_var = (lap_ss - lap_s * (lap_s / npx)) / npx
    return level, n_comp, stats, centroids, focus, lap_var


@njit(cache=True, nogil=True)
def _box_focus(src: np.ndarray, stats: np.ndarray, focus: np.ndarray) -> None:
    """Sum of squared Laplacian per box: box by box, or through a summed-area table when boxes overlap a lot.

    Direct sums cost the boxes' total area; the table costs about three frame passes. The switch keeps a
    pathological mask (many large, overlapping boxes) from costing more than the table.
    """
    height, width = src.shape
    total = 0
    for j in range(stats.shape[0]):
        total += stats[j, 2] * stats[j, 3]
    if total <= 3 * height * width:
        for j in range(stats.shape[0]):
            focus[j] = _laplacian_sq_sum_box(src, stats[j, 0], stats[j, 1], stats[j, 2], stats[j, 3])
        return
    sat = np.zeros((height + 1, width + 1), np.int64)
    lap = np.empty(width, np.int32)
    for y in range(height):
        _laplacian_row(src, y, lap)
        acc = 0
        for x in range(width):
            v = np.int64(lap[x])
            acc += v * v
            sat[y + 1, x + 1] = sat[y, x + 1] + acc
    for j in range(stats.shape[0]):
        x, y, w, h = stats[j, 0], stats[j, 1], stats[j, 2], stats[j, 3]
        focus[j] = sat[y + h, x + w] - sat[y, x + w] - sat[y + h, x] + sat[y, x]


def analyse_frame(frame: np.ndarray, method: str = "gaussian", *, block_size: int = 31, c: float = 5.0,
                  level: int = 128, contrast: float = 0.05, invert: bool = True, connectivity: int = 8,
                  min_area: int = 1, max_area: int | None = None,
                  mask_out: np.ndarray | None = None) -> FrameAnalysis:
    """Threshold a frame, find its blobs and score each blob's focus, in one sweep over the frame.

    Equivalent to: a threshold (:func:`kernels.threshold` / :func:`kernels.otsu` /
    :func:`kernels.adaptive_mean` / :func:`kernels.adaptive_gaussian` / :func:`kernels.background_threshold`,
    maxval 255), then
    :func:`kernels.connected_components`, then :func:`kernels.filter_by_area`, then per blob the sum of
    squared 4-neighbour Laplacian (reflect-101 border) over its box, plus :func:`kernels.laplacian_variance`.

    Parameters
    ----------
    frame : (M, N) ndarray of uint8
        C-contiguous grayscale frame.
    method : {'gaussian', 'mean', 'otsu', 'global', 'background'}, optional
        The threshold. ``background``: foreground is ``contrast`` darker than the glass, a smooth surface
        fitted to the frame (:mod:`kernels.background`); dark objects only, so ``invert`` must be True.
    block_size : int, optional
        Adaptive methods: odd, >= 3, at most ``min(M, N)`` and 2047.
    c : float, optional
        Adaptive methods: constant subtracted from the local mean.
    level : int, optional
        Method ``global``: foreground where ``frame > level`` (in [0, 255]).
    contrast : float, optional
        Method ``background``: in (0, 1).
    invert : bool, optional
        Foreground is the dark side (THRESH_BINARY_INV); True by default because TPP structures are darker
        than the glass around them.
    connectivity : {8, 4}, optional
    min_area, max_area : int, optional
        Keep blobs with ``min_area <= area <= max_area`` pixels (``max_area`` None: no upper bound).
    mask_out : (M, N) ndarray of uint8, optional
        When given, also receives the binary mask (0 / 255).

    Returns
    -------
    FrameAnalysis

    Raises
    ------
    ValueError
        On a bad frame, method or parameter (the message names it and what is allowed).

    Examples
    --------
    >>> f = np.full((64, 64), 200, np.uint8); f[20:30, 10:25] = 40
    >>> r = analyse_frame(f, "global", level=128)
    >>> r.n_blobs, r.stats[0].tolist()
    (1, [10, 20, 15, 10, 150])
    """
    frame = check_frame(frame)
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    code = METHODS[method]
    lv = check_int(level, "level", 0, 255)
    cv = check_contrast(contrast)
    if code == 4 and not invert:
        raise ValueError("method 'background' finds objects darker than the glass: invert must be True, got False")
    if code in (2, 3):
        block = check_block_size(block_size, frame.shape)
        idelta = _adaptive_delta(c, bool(invert))
    else:
        block, idelta = 1, 0
        check_real(c, "c")
    conn = check_connectivity(connectivity)
    lo = check_int(min_area, "min_area", 1)
    hi = 0 if max_area is None else check_int(max_area, "max_area", lo)
    write_mask = mask_out is not None
    mask = check_out(mask_out, frame.shape, np.uint8, frame, name="mask_out") if write_mask else \
        np.empty((1, 1), np.uint8)
    kernel = gaussian_kernel(block) if code == 3 else np.ones(1, np.float32)
    used, n_comp, stats, centroids, focus, lap_var = _analyse_core(
        frame, code, lv, kernel, block, idelta, cv, bool(invert), 1 if conn == 8 else 0, lo, hi, mask, write_mask)
    return FrameAnalysis(level=int(used) if code in (0, 1, 4) else -1, n_components=int(n_comp), stats=stats,
                         centroids=centroids, focus=focus, laplacian_variance=float(lap_var))
